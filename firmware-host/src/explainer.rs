//! The language thread: the compact LLaMA explains a face when its track is
//! born or its label changes, and answers clients' questions. Perception
//! only queues work here and never waits for text.

use std::{
    collections::VecDeque,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Condvar, Mutex,
    },
    time::{Duration, Instant},
};

use emoedge::{analysis::Face, explain, heads::Emotion, hri, llm::session::Llm};
use serde_json::Value;

use crate::bus::{lock, Bus};

pub enum Job {
    Explain { face: Face, label: Emotion },
    Ask { face: Face, question: String, request: Option<Value> },
}

impl Job {
    fn face_id(&self) -> u32 {
        match self {
            Job::Explain { face, .. } | Job::Ask { face, .. } => face.id,
        }
    }
}

pub struct Explainer {
    jobs: Mutex<VecDeque<Job>>,
    ready: Condvar,
    max_pending: usize,
    closed: AtomicBool,
    pub done: AtomicU64,
}

impl Explainer {
    pub fn new(max_pending: usize) -> Explainer {
        Explainer {
            jobs: Mutex::new(VecDeque::new()),
            ready: Condvar::new(),
            max_pending,
            closed: AtomicBool::new(false),
            done: AtomicU64::new(0),
        }
    }

    /// Queues an explanation of `face`'s new `label`. A face's older,
    /// unstarted explanation is replaced: only its latest state is worth words.
    pub fn explain(&self, face: Face, label: Emotion) {
        if self.closed.load(Ordering::Relaxed) {
            return;
        }
        let mut jobs = lock(&self.jobs);
        let id = face.id;
        jobs.retain(|j| !(matches!(j, Job::Explain { .. }) && j.face_id() == id));
        jobs.push_back(Job::Explain { face, label });
        // Explanations of other faces give way to questions and to newer ones.
        while jobs.len() > self.max_pending {
            match jobs.iter().position(|j| matches!(j, Job::Explain { .. })) {
                Some(i) => drop(jobs.remove(i)),
                None => break,
            }
        }
        self.ready.notify_one();
    }

    /// Queues a client's question; refused when too many are waiting.
    pub fn ask(&self, face: Face, question: String, request: Option<Value>) -> Result<(), String> {
        if self.closed.load(Ordering::Relaxed) {
            return Err("no language model is running on this device".into());
        }
        let mut jobs = lock(&self.jobs);
        if jobs.iter().filter(|j| matches!(j, Job::Ask { .. })).count() >= self.max_pending {
            return Err(format!("{} questions are waiting already; ask again later", self.max_pending));
        }
        jobs.push_back(Job::Ask { face, question, request });
        self.ready.notify_one();
        Ok(())
    }

    /// Stops taking work (no model, or shutting down); wakes the thread.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        lock(&self.jobs).clear();
        self.ready.notify_all();
    }

    fn next(&self) -> Option<Job> {
        let jobs = lock(&self.jobs);
        let (mut jobs, _) = self
            .ready
            .wait_timeout_while(jobs, Duration::from_millis(500), |j| {
                j.is_empty() && !self.closed.load(Ordering::Relaxed)
            })
            .unwrap_or_else(|p| p.into_inner());
        jobs.pop_front()
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// Serves jobs with `llm` until closed, publishing each answer; `shown`
    /// receives each finished text (for the kiosk). Returns true when it
    /// stopped because the model file changed under it (reload it), false
    /// when closed.
    pub fn run(&self, llm: &Llm, bus: &Bus, max_tokens: usize, shown: impl Fn(u32, &str)) -> bool {
        let template = llm.tokenizer.chat_template.as_deref();
        let primed = match explain::primed_sessions(llm) {
            Ok(s) => s,
            Err(e) => {
                log::error!("the language model cannot start a session: {e:#}; explanations are off");
                self.close();
                return false;
            }
        };
        while !self.is_closed() {
            let Some(job) = self.next() else { continue };
            let t = Instant::now();
            let (face, question, trigger) = match job {
                Job::Explain { face, label } => (face, None, hri::Trigger::Expression(label)),
                Job::Ask { face, question, request } => {
                    (face, Some(question.clone()), hri::Trigger::Ask { question, request })
                }
            };
            let result = explain::prompt(&face, question.as_deref(), template).map_err(anyhow::Error::from).and_then(
                |(prompt, prefix)| {
                    let ids = llm.tokenizer.encode(&prompt, true)?;
                    let mut session = primed.fork(&ids)?;
                    let out = session.generate(&ids, max_tokens, Default::default(), |_| {})?;
                    Ok((format!("{prefix}{}", out.text), out.tokens.len()))
                },
            );
            match result {
                Ok((text, tokens)) => {
                    let ms = t.elapsed().as_secs_f64() * 1e3;
                    bus.publish(&hri::explanation_event(face.id, &trigger, &text, tokens, ms));
                    shown(face.id, text.trim());
                    self.done.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    let changed = e.chain().any(|c| c.is::<emoedge::mapped::Changed>());
                    log::warn!("explaining face {} failed: {e:#}", face.id);
                    let mut event = hri::explanation_event(face.id, &trigger, "", 0, 0.0);
                    event["error"] = format!("{e:#}").into();
                    bus.publish(&event);
                    if changed {
                        return true;
                    }
                }
            }
        }
        false
    }
}
