//! Any bytes as a GGUF file: the reader (every count and offset checked),
//! then the tokenizer and the graph built from what it read.
#![no_main]
use emoedge::llm::{gguf::Gguf, graph, tokenizer::Tokenizer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("emoedge-fuzz-{}.gguf", std::process::id()));
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let Ok(gguf) = Gguf::open(&path) else { return };
    let _ = Tokenizer::from_gguf(&gguf);
    let _ = graph::build(&gguf, graph::Weights::Mapped);
});
