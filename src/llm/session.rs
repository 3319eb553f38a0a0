//! Running the compact LLaMA: a loaded model ([`Llm`]) and conversations with
//! it ([`Session`]), each holding its own KV cache inside tract's state.
//!
//! A session keeps the tokens its cache holds. When the next prompt extends
//! them (the next turn about the same face), only the new tokens are fed;
//! otherwise the cache starts afresh.

use std::{path::Path, sync::Arc, time::Instant};

use anyhow::{bail, Result};
use tract_nnef::internal::*;
use tract_onnx::tract_core::runtime::{Runnable, State};

use super::{
    gguf::Gguf,
    graph::{build, Config, Weights},
    sampler::{Sampler, Sampling},
    tokenizer::Tokenizer,
};
use crate::{
    backend::{Backend, Cpu, Device},
    models::Precision,
};

/// Tokens fed to the graph per call during prefill: long prompts go in chunks
/// so the attention scratch stays bounded.
pub const PREFILL_CHUNK: usize = 128;

pub struct Llm {
    plan: Box<dyn Runnable>,
    /// The export's mapping, which the weight ops read: checked after each step.
    weights: Arc<crate::mapped::MappedFile>,
    pub tokenizer: Tokenizer,
    pub config: Config,
    pub precision: Precision,
    /// The export file whose mapping holds the weights.
    pub export: std::path::PathBuf,
    /// Seconds spent converting (first use only), mapping, building and optimising the graph.
    pub load_seconds: f64,
    /// The backend it runs on ([`Backend::name`]).
    pub device: &'static str,
}

impl Llm {
    /// Loads a model for `precision` on the CPU. A plain GGUF is converted
    /// once into the cache (see [`super::convert::ensure_export`]); an export
    /// is mapped as is.
    pub fn load(path: &Path, precision: Precision) -> Result<Llm> {
        Llm::load_on(path, precision, &Cpu)
    }

    /// [`Llm::load`] on `backend`. On the CPU the graph reads the mapped
    /// weights through emoedge's kernels; elsewhere it holds them as tensors
    /// in tract's standard ops, which the backend's runtime translates.
    pub fn load_on(path: &Path, precision: Precision, backend: &dyn Backend) -> Result<Llm> {
        let t = Instant::now();
        let export = super::convert::ensure_export(path, precision)?;
        let gguf = Gguf::open(&export)?;
        let tokenizer = Tokenizer::from_gguf(&gguf)?;
        let weights = if backend.runs_on_host() { Weights::Mapped } else { Weights::Tensors };
        let (config, model) = build(&gguf, weights)?;
        let plan = backend.prepare(model)?;
        log::info!(
            "loaded {} at {precision} from {} in {:.1}s on {} ({weights:?} weights; {} kernels, {} thread(s))",
            path.display(),
            export.display(),
            t.elapsed().as_secs_f64(),
            backend.name(),
            super::kernels::isa(),
            super::linear::threads()
        );
        Ok(Llm {
            plan,
            weights: gguf.mapping(),
            tokenizer,
            config,
            precision,
            export,
            load_seconds: t.elapsed().as_secs_f64(),
            device: backend.name(),
        })
    }

    /// [`Llm::load_on`] the backend `device` selects ([`crate::backend::select`]).
    /// Where a GPU's runtime cannot take the graph, it is loaded on the CPU
    /// instead, with the reason logged: a slower explanation beats none.
    pub fn load_on_device(path: &Path, precision: Precision, device: Device) -> Result<Llm> {
        let selected = crate::backend::select(device);
        log::info!("LLM on {}: {}", selected.backend.name(), selected.why);
        match Llm::load_on(path, precision, selected.backend.as_ref()) {
            Err(e) if !selected.backend.runs_on_host() => {
                log::warn!("the LLM could not be set up on {} ({e:#}); using the CPU", selected.backend.name());
                Llm::load(path, precision)
            }
            loaded => loaded,
        }
    }

    /// Sessions whose caches hold each of `prefixes`, for [`Primed::fork`].
    /// A prefix that extends one already read is read from there on.
    pub fn primed_set(&self, prefixes: &[Vec<u32>]) -> Result<Primed<'_>> {
        let mut primed = Primed { sessions: Vec::new(), llm: self };
        for prefix in prefixes.iter().filter(|p| !p.is_empty()) {
            let mut s = primed.fork(prefix)?;
            s.prefill(prefix)?;
            primed.sessions.push(s);
        }
        Ok(primed)
    }

    pub fn session(&self) -> Result<Session<'_>> {
        Ok(Session { llm: self, state: self.plan.spawn()?, tokens: Vec::new(), logits: Vec::new() })
    }
}

/// A conversation: the KV cache (inside tract's state) and the tokens it holds.
/// Cloning one forks it, cache included: prime a session with a shared prompt
/// prefix once, then clone it for each face.
#[derive(Clone)]
pub struct Session<'a> {
    llm: &'a Llm,
    state: Box<dyn State>,
    /// The tokens the KV cache holds, in order.
    pub tokens: Vec<u32>,
    /// The logits after the last fed token.
    logits: Vec<f32>,
}

/// Sessions primed with prompt prefixes that many prompts start with, each
/// read once. A prompt is continued from the longest of them it extends.
pub struct Primed<'a> {
    llm: &'a Llm,
    sessions: Vec<Session<'a>>,
}

impl<'a> Primed<'a> {
    /// A session for `prompt`: a copy of the primed one holding the longest
    /// prefix of it (cache included), else a fresh one.
    pub fn fork(&self, prompt: &[u32]) -> Result<Session<'a>> {
        let best = self
            .sessions
            .iter()
            .filter(|s| s.tokens.len() < prompt.len() && prompt.starts_with(&s.tokens))
            .max_by_key(|s| s.tokens.len());
        match best {
            Some(s) => Ok(s.clone()),
            None => self.llm.session(),
        }
    }
}

/// What one generation did.
#[derive(Clone, Debug, Default)]
pub struct Generated {
    pub tokens: Vec<u32>,
    pub text: String,
    pub prompt_tokens: usize,
    /// Prompt tokens actually fed (the rest came from the cache).
    pub fed_tokens: usize,
    pub prefill_seconds: f64,
    pub decode_seconds: f64,
    /// Seconds from the call to the first generated token.
    pub first_token_seconds: f64,
}

impl Session<'_> {
    fn feed(&mut self, ids: &[u32]) -> Result<()> {
        let ctx = self.llm.config.max_ctx;
        if self.tokens.len() + ids.len() > ctx {
            bail!(
                "{} tokens do not fit the model's context of {ctx}; shorten the prompt",
                self.tokens.len() + ids.len()
            );
        }
        for chunk in ids.chunks(PREFILL_CHUNK) {
            let tokens: Vec<i64> = chunk.iter().map(|t| *t as i64).collect();
            let start = self.tokens.len() as i64;
            let positions: Vec<i64> = (start..start + tokens.len() as i64).collect();
            let inputs = tvec!(
                Tensor::from_shape(&[tokens.len()], &tokens)?.into_tvalue(),
                Tensor::from_shape(&[positions.len()], &positions)?.into_tvalue()
            );
            let state = &mut self.state;
            let out = super::linear::on_pool(move || state.run(inputs))?;
            // Logits computed from a file cut or rewritten meanwhile are not the model's.
            self.llm.weights.check()?;
            self.logits = out[0].try_as_plain_ram()?.as_slice::<f32>()?.to_vec();
            self.tokens.extend_from_slice(chunk);
        }
        Ok(())
    }

    /// Makes the cache hold exactly `prompt`, feeding as little as possible.
    /// Returns how many tokens were fed.
    fn prefill(&mut self, prompt: &[u32]) -> Result<usize> {
        let reusable = !self.tokens.is_empty() && prompt.len() > self.tokens.len() && prompt.starts_with(&self.tokens);
        if !reusable {
            self.state = self.llm.plan.spawn()?;
            self.tokens.clear();
        }
        let new = &prompt[self.tokens.len()..];
        self.feed(new)?;
        Ok(new.len())
    }

    /// Makes the cache hold `prompt` and returns the next-token logits.
    pub fn logits_after(&mut self, prompt: &[u32]) -> Result<&[f32]> {
        if prompt.is_empty() {
            bail!("the prompt is empty");
        }
        self.prefill(prompt)?;
        Ok(&self.logits)
    }

    /// Feeds `prompt` and generates up to `max_tokens`, stopping at a stop
    /// token. `on_text` receives each piece of text as soon as it decodes.
    pub fn generate(
        &mut self,
        prompt: &[u32],
        max_tokens: usize,
        sampling: Sampling,
        mut on_text: impl FnMut(&str),
    ) -> Result<Generated> {
        self.generate_while(prompt, max_tokens, sampling, |t| {
            on_text(t);
            true
        })
    }

    /// [`Session::generate`], which also stops once `on_text` returns false.
    pub fn generate_while(
        &mut self,
        prompt: &[u32],
        max_tokens: usize,
        sampling: Sampling,
        mut on_text: impl FnMut(&str) -> bool,
    ) -> Result<Generated> {
        if prompt.is_empty() {
            bail!("the prompt is empty");
        }
        let ctx = self.llm.config.max_ctx;
        if prompt.len() + max_tokens > ctx {
            bail!(
                "the prompt is {} tokens and {max_tokens} more were asked for, but the model's context holds {ctx}; shorten the prompt or ask for fewer tokens",
                prompt.len()
            );
        }
        let t = Instant::now();
        let fed = self.prefill(prompt)?;
        let prefill_seconds = t.elapsed().as_secs_f64();
        let mut sampler = Sampler::new(sampling);
        let mut out = Generated { prompt_tokens: prompt.len(), fed_tokens: fed, prefill_seconds, ..Default::default() };
        let t_decode = Instant::now();
        let tok = &self.llm.tokenizer;
        let mut shown = 0; // bytes of decoded text already streamed
        for i in 0..max_tokens {
            let next = sampler.next(&self.logits);
            if i == 0 {
                out.first_token_seconds = t.elapsed().as_secs_f64();
            }
            if tok.stop.contains(&next) {
                break;
            }
            out.tokens.push(next);
            // Decode the whole answer and stream what is new: a multi-byte
            // character may span tokens, so a lone token can decode to nothing.
            let text = tok.decode(&out.tokens)?;
            let mut more = true;
            if text.len() > shown && text.is_char_boundary(shown) && !text.ends_with('\u{FFFD}') {
                more = on_text(&text[shown..]);
                shown = text.len();
            }
            out.text = text;
            if !more {
                break;
            }
            if i + 1 < max_tokens {
                self.feed(&[next])?;
            }
        }
        out.decode_seconds = t_decode.elapsed().as_secs_f64();
        Ok(out)
    }
}
