//! The tokenizer, built from a GGUF's own vocabulary and merges: byte-level
//! BPE (GPT-2 style, `tokenizer.ggml.model = "gpt2"`), as SmolLM2, TinyLlama's
//! successors and most current LLaMA-family models ship it. The BPE itself is
//! the `tokenizers` crate's; this module only assembles it from GGUF metadata.

use tokenizers::{
    decoders::byte_level::ByteLevel as ByteLevelDecoder,
    models::bpe::{Vocab, BPE},
    pre_tokenizers::{byte_level::ByteLevel, digits::Digits, sequence::Sequence, PreTokenizerWrapper},
    AddedToken, Tokenizer as HfTokenizer,
};

use super::gguf::{Gguf, GgufError, Value};

#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error("{path}: tokenizer {model:?} is not supported; emoedge reads byte-level BPE (\"gpt2\") vocabularies")]
    Unsupported { path: String, model: String },
    #[error("{path}: the tokenizer metadata is malformed: {what}")]
    Malformed { path: String, what: String },
    #[error("tokenizer: {0}")]
    Tokenizers(String),
}

/// ggml token types (`tokenizer.ggml.token_type`).
const CONTROL: i64 = 3;
const USER_DEFINED: i64 = 4;

pub struct Tokenizer {
    /// Control-token texts become control tokens.
    inner: HfTokenizer,
    /// Control-token texts stay plain text (what user text must get).
    plain: HfTokenizer,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    /// Tokens that end a turn: EOS and the chat template's end-of-turn marker.
    pub stop: Vec<u32>,
    pub add_bos: bool,
    pub chat_template: Option<String>,
}

impl Tokenizer {
    pub fn from_gguf(g: &Gguf) -> Result<Tokenizer, TokenizerError> {
        let malformed = |what: &str| TokenizerError::Malformed { path: g.path.clone(), what: what.into() };
        let model = g.get("tokenizer.ggml.model")?.as_str().unwrap_or_default().to_string();
        if model != "gpt2" {
            return Err(TokenizerError::Unsupported { path: g.path.clone(), model });
        }
        let tokens = g.get("tokenizer.ggml.tokens")?.as_array().ok_or_else(|| malformed("tokens is not an array"))?;
        let merges = g.get("tokenizer.ggml.merges")?.as_array().ok_or_else(|| malformed("merges is not an array"))?;
        let types: Vec<i64> = match g.metadata.get("tokenizer.ggml.token_type").and_then(Value::as_array) {
            Some(t) => {
                t.iter().map(|v| if let Value::Int(i) = v { *i } else { v.as_u64().unwrap_or(1) as i64 }).collect()
            }
            None => vec![1; tokens.len()],
        };
        let mut vocab = Vocab::default();
        let mut special = Vec::new();
        for (id, t) in tokens.iter().enumerate() {
            let s = t.as_str().ok_or_else(|| malformed("a token is not a string"))?;
            vocab.insert(s.to_string(), id as u32);
            if matches!(types.get(id), Some(&CONTROL) | Some(&USER_DEFINED)) {
                special.push(AddedToken::from(s.to_string(), true));
            }
        }
        let merges = merges
            .iter()
            .map(|m| {
                let s = m.as_str().ok_or_else(|| malformed("a merge is not a string"))?;
                let (a, b) = s.split_once(' ').ok_or_else(|| malformed("a merge is not two tokens"))?;
                Ok((a.to_string(), b.to_string()))
            })
            .collect::<Result<Vec<_>, TokenizerError>>()?;
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(|e| TokenizerError::Tokenizers(e.to_string()))?;
        let mut inner = HfTokenizer::new(bpe);
        // llama.cpp's "smollm" (and "gpt2"-family) pre-tokenizers: digits one
        // by one, then the GPT-2 split on letters, numbers, punctuation and spaces.
        let mut steps: Vec<PreTokenizerWrapper> = Vec::new();
        let pre = g.metadata.get("tokenizer.ggml.pre").and_then(Value::as_str).unwrap_or("default");
        if matches!(pre, "smollm" | "llama3" | "llama-bpe" | "qwen2" | "deepseek-llm") {
            steps.push(Digits::new(true).into());
        }
        steps.push(ByteLevel::new(false, true, true).into());
        inner.with_pre_tokenizer(Some(Sequence::new(steps)));
        inner.with_decoder(Some(ByteLevelDecoder::default()));
        inner.add_special_tokens(&special);
        let mut plain = inner.clone();
        plain.set_encode_special_tokens(true);

        let id = |key: &str| g.metadata.get(key).and_then(Value::as_u64).map(|v| v as u32);
        let (bos, eos) = (id("tokenizer.ggml.bos_token_id"), id("tokenizer.ggml.eos_token_id"));
        let mut stop: Vec<u32> = eos.into_iter().collect();
        for marker in ["<|im_end|>", "<|eot_id|>", "<|end|>"] {
            if let Some(i) = inner.token_to_id(marker) {
                if !stop.contains(&i) {
                    stop.push(i);
                }
            }
        }
        let add_bos = matches!(g.metadata.get("tokenizer.ggml.add_bos_token"), Some(Value::Bool(true)));
        let chat_template = g.metadata.get("tokenizer.chat_template").and_then(Value::as_str).map(str::to_string);
        Ok(Tokenizer { inner, plain, bos, eos, stop, add_bos, chat_template })
    }

    /// Token ids for `text`. With `special`, marker texts such as
    /// `<|im_start|>` become their control tokens; without, they are plain text.
    pub fn encode(&self, text: &str, special: bool) -> Result<Vec<u32>, TokenizerError> {
        let tk = if special { &self.inner } else { &self.plain };
        let enc = tk.encode_fast(text, false).map_err(|e| TokenizerError::Tokenizers(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Text for `ids`, control tokens included.
    pub fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        self.inner.decode(ids, false).map_err(|e| TokenizerError::Tokenizers(e.to_string()))
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }
}
