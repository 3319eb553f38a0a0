//! The event stream: every event gets the next sequence number and a time,
//! is serialised once, and goes to stdout and to each connected client's own
//! bounded queue. A client that falls a whole queue behind is disconnected;
//! no other client waits for it or loses an event.

use std::{
    collections::VecDeque,
    io::Write,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Condvar, Mutex, MutexGuard,
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use serde_json::Value;

use crate::config::StdoutMode;

/// Locks a mutex whose data stays valid even if a holder panicked.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub struct Bus {
    inner: Mutex<Inner>,
    stdout: StdoutMode,
    /// Lines for stdout, written by their own thread: a stdout nobody reads
    /// (a full pipe) must not stall perception.
    stdout_queue: Arc<Client>,
    /// Lines stdout lost because its reader fell a whole queue behind.
    pub stdout_dropped: AtomicU64,
    client_queue: usize,
    pub published: AtomicU64,
}

/// Lines stdout may fall behind by.
const STDOUT_QUEUE: usize = 4096;

struct Inner {
    seq: u64,
    clients: Vec<Arc<Client>>,
    /// For the terminal: when the faces were last printed, and which.
    last_faces: (Option<Instant>, String),
}

impl Bus {
    pub fn new(stdout: StdoutMode, client_queue: usize) -> Bus {
        let stdout_queue = Arc::new(Client::new(0, STDOUT_QUEUE));
        if stdout != StdoutMode::Off {
            let q = stdout_queue.clone();
            let spawned = std::thread::Builder::new().name("stdout".into()).spawn(move || write_stdout(&q));
            if let Err(e) = spawned {
                log::warn!("no stdout writer ({e}); events go to the socket only");
            }
        }
        Bus {
            inner: Mutex::new(Inner { seq: 0, clients: Vec::new(), last_faces: (None, String::new()) }),
            stdout,
            stdout_queue,
            stdout_dropped: AtomicU64::new(0),
            client_queue,
            published: AtomicU64::new(0),
        }
    }

    /// Publishes one event to everyone; returns its sequence number.
    pub fn publish(&self, body: &Value) -> u64 {
        let mut inner = lock(&self.inner);
        inner.seq += 1;
        let seq = inner.seq;
        let t = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64();
        let line: Arc<str> = emoedge::hri::envelope(seq, t, body).into();
        // Written under the lock, so stdout carries the events in order.
        match self.stdout {
            StdoutMode::Json => self.print(&line),
            StdoutMode::Terminal => {
                if let Some(text) = terminal_line(body, &mut inner.last_faces) {
                    self.print(&text)
                }
            }
            StdoutMode::Off => {}
        }
        inner.clients.retain(|c| {
            if !c.send(line.clone()) {
                log::warn!("client {} is {} events behind: disconnecting it", c.id, self.client_queue);
                c.close();
            }
            !c.is_closed()
        });
        self.published.fetch_add(1, Ordering::Relaxed);
        seq
    }

    fn print(&self, line: &str) {
        if !self.stdout_queue.send(line.into()) && self.stdout_dropped.fetch_add(1, Ordering::Relaxed) == 0 {
            log::warn!(
                "stdout is {STDOUT_QUEUE} lines behind: dropping lines there (the socket still gets every event)"
            );
        }
    }

    /// Waits up to `limit` for stdout to take what is queued (at shutdown).
    pub fn flush_stdout(&self, limit: Duration) {
        let t = Instant::now();
        while !lock(&self.stdout_queue.queue).is_empty() && t.elapsed() < limit && !self.stdout_queue.is_closed() {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Registers a client; it receives every event published from now on.
    pub fn subscribe(&self, id: u64) -> Arc<Client> {
        let client = Arc::new(Client::new(id, self.client_queue));
        lock(&self.inner).clients.push(client.clone());
        client
    }

    pub fn clients(&self) -> usize {
        let mut inner = lock(&self.inner);
        inner.clients.retain(|c| !c.is_closed());
        inner.clients.len()
    }

    /// Closes every client (at shutdown).
    pub fn close_all(&self) {
        for c in lock(&self.inner).clients.drain(..) {
            c.close();
        }
    }
}

fn write_stdout(q: &Client) {
    while let Some(next) = q.next(Duration::from_millis(500)) {
        let Some(line) = next else { continue };
        let mut out = std::io::stdout().lock();
        if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
            log::warn!("stdout is closed; events go to the socket only");
            q.close();
        }
    }
}

/// A readable line for people at a terminal: changes and explanations as
/// they come, the faces once a second or when they change.
fn terminal_line(body: &Value, last: &mut (Option<Instant>, String)) -> Option<String> {
    let s = |v: &Value| v.as_str().unwrap_or("?").to_string();
    match body["type"].as_str()? {
        "faces" => {
            let faces: Vec<String> = body["faces"]
                .as_array()?
                .iter()
                .map(|f| {
                    let aus: Vec<String> = f["action_units"]["aus"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .zip(f["action_units"]["intensities"].as_array().into_iter().flatten())
                        .filter(|(_, v)| v.as_f64().unwrap_or(0.0) >= emoedge::sink::terminal::ACTIVE_AU as f64)
                        .map(|(a, _)| format!("AU{a}"))
                        .collect();
                    format!(
                        "face {} {} {:.2} {}",
                        s(&f["id"]),
                        s(&f["expression"]["expression"]),
                        f["expression"]["confidence"].as_f64().unwrap_or(0.0),
                        aus.join(" ")
                    )
                })
                .collect();
            let text = if faces.is_empty() { "no face".to_string() } else { faces.join(" | ") };
            let labels: String = text.split(' ').filter(|w| !w.contains('.')).collect();
            let due = last.0.is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
            if due || labels != last.1 {
                *last = (Some(Instant::now()), labels);
                Some(format!("frame {:>6}  {text}", body["frame"]))
            } else {
                None
            }
        }
        "track" => Some(format!("track {} {}", s(&body["id"]), s(&body["change"]))),
        "explanation" => Some(format!("face {} says: {}", s(&body["face"]), s(&body["text"]))),
        "camera" => Some(format!("camera {}: {}", s(&body["state"]), s(&body["source"]))),
        _ => Some(body.to_string()),
    }
}

/// One connected client's outgoing lines.
pub struct Client {
    pub id: u64,
    queue: Mutex<VecDeque<Arc<str>>>,
    ready: Condvar,
    capacity: usize,
    closed: AtomicBool,
}

impl Client {
    fn new(id: u64, capacity: usize) -> Client {
        Client {
            id,
            queue: Mutex::new(VecDeque::new()),
            ready: Condvar::new(),
            capacity,
            closed: AtomicBool::new(false),
        }
    }

    /// Queues a line; false when the queue is full (the client is too slow).
    pub fn send(&self, line: Arc<str>) -> bool {
        if self.is_closed() {
            return true;
        }
        let mut q = lock(&self.queue);
        if q.len() >= self.capacity {
            return false;
        }
        q.push_back(line);
        self.ready.notify_one();
        true
    }

    /// The next line to write, waiting up to `timeout`; `None` once closed.
    pub fn next(&self, timeout: Duration) -> Option<Option<Arc<str>>> {
        let q = lock(&self.queue);
        let (mut q, _) = self
            .ready
            .wait_timeout_while(q, timeout, |q| q.is_empty() && !self.is_closed())
            .unwrap_or_else(|p| p.into_inner());
        if self.is_closed() {
            return None;
        }
        Some(q.pop_front())
    }

    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        let _guard = lock(&self.queue);
        self.ready.notify_all();
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_slow_client_is_dropped_and_the_others_lose_nothing() {
        let bus = Bus::new(StdoutMode::Off, 4);
        let slow = bus.subscribe(1);
        let fast = bus.subscribe(2);
        let mut got = Vec::new();
        for i in 0..10 {
            bus.publish(&json!({"type": "track", "id": i.to_string(), "change": "born"}));
            while let Some(Some(line)) = fast.next(Duration::ZERO) {
                got.push(line);
            }
        }
        assert!(slow.is_closed());
        assert!(!fast.is_closed());
        let seqs: Vec<u64> =
            got.iter().map(|l| serde_json::from_str::<Value>(l).unwrap()["seq"].as_u64().unwrap()).collect();
        assert_eq!(seqs, (1..=10).collect::<Vec<_>>());
        assert_eq!(bus.clients(), 1);
    }
}
