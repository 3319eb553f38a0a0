//! The HRI socket: a Unix stream socket (mode 0660), and optionally TCP on a
//! loopback address, where each client reads event lines and may write
//! request lines. Every client has a writer thread fed by its own queue and a
//! reader thread that parses its requests, so a client that misbehaves in any
//! way is the only one it affects.

use std::{
    io::{self, ErrorKind, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    os::unix::{
        fs::PermissionsExt,
        net::{UnixListener, UnixStream},
    },
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use emoedge::hri::{error_reply, Request, RequestError, MAX_REQUEST_BYTES};

use crate::bus::{Bus, Client};

/// What the daemon does with a parsed request. An `Err` is sent back to
/// that client alone.
pub type Handler = Arc<dyn Fn(Request, &Arc<Client>) -> Result<(), String> + Send + Sync>;

pub struct Limits {
    pub max_clients: usize,
    pub requests_per_second: f64,
}

/// A client's connection, over either listener.
pub enum Conn {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Conn {
    fn try_clone(&self) -> io::Result<Conn> {
        Ok(match self {
            Conn::Unix(s) => Conn::Unix(s.try_clone()?),
            Conn::Tcp(s) => Conn::Tcp(s.try_clone()?),
        })
    }
    fn setup(&self) -> io::Result<()> {
        // A client that stops reading blocks its writer at most this long; its
        // queue then fills and the bus disconnects it.
        let (write, read) = (Some(Duration::from_secs(2)), Some(Duration::from_millis(500)));
        match self {
            Conn::Unix(s) => {
                s.set_nonblocking(false)?;
                s.set_write_timeout(write)?;
                s.set_read_timeout(read)
            }
            Conn::Tcp(s) => {
                s.set_nonblocking(false)?;
                s.set_nodelay(true)?;
                s.set_write_timeout(write)?;
                s.set_read_timeout(read)
            }
        }
    }
    fn shutdown(&self) {
        let _ = match self {
            Conn::Unix(s) => s.shutdown(std::net::Shutdown::Both),
            Conn::Tcp(s) => s.shutdown(std::net::Shutdown::Both),
        };
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Unix(s) => s.read(buf),
            Conn::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Unix(s) => s.write(buf),
            Conn::Tcp(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

pub enum Listener {
    Unix(UnixListener, PathBuf),
    Tcp(TcpListener, SocketAddr),
}

impl Listener {
    fn accept(&self) -> io::Result<Conn> {
        match self {
            Listener::Unix(l, _) => l.accept().map(|(s, _)| Conn::Unix(s)),
            Listener::Tcp(l, _) => l.accept().map(|(s, _)| Conn::Tcp(s)),
        }
    }
    fn name(&self) -> String {
        match self {
            Listener::Unix(_, p) => p.display().to_string(),
            Listener::Tcp(_, a) => format!("tcp {a}"),
        }
    }
}

/// Listens on TCP at `addr`, which must be a loopback address: the events
/// describe people, and no request is authenticated.
pub fn bind_tcp(addr: SocketAddr) -> Result<Listener> {
    if !addr.ip().is_loopback() {
        bail!("[events] tcp = {addr}: TCP listens on loopback only (127.0.0.1 or ::1); use the Unix socket or an SSH tunnel for remote clients");
    }
    let l = TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
    l.set_nonblocking(true)?;
    let addr = l.local_addr()?;
    Ok(Listener::Tcp(l, addr))
}

/// Binds the socket at `path` (replacing a stale one), mode 0660, owned by `group`.
pub fn bind(path: &Path, group: Option<&str>) -> Result<Listener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()) => {
            if UnixStream::connect(path).is_ok() {
                bail!(
                    "{} is in use by another running daemon; stop it or set [events] socket elsewhere",
                    path.display()
                );
            }
            std::fs::remove_file(path).with_context(|| format!("cannot remove the stale socket {}", path.display()))?;
        }
        Ok(_) => bail!("{} exists and is not a socket; refusing to replace it", path.display()),
        Err(_) => {}
    }
    let listener = UnixListener::bind(path).with_context(|| format!("cannot bind the socket {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("cannot set mode 0660 on {}", path.display()))?;
    if let Some(group) = group {
        let gid = group_id(group).with_context(|| format!("[events] socket_group {group:?}"))?;
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())?;
        // SAFETY: chown on a NUL-terminated path we own; -1 leaves the owner.
        if unsafe { libc::chown(c.as_ptr(), u32::MAX, gid) } != 0 {
            bail!("cannot give {} to group {group}: {}", path.display(), std::io::Error::last_os_error());
        }
    }
    listener.set_nonblocking(true)?;
    Ok(Listener::Unix(listener, path.to_path_buf()))
}

fn group_id(name: &str) -> Result<libc::gid_t> {
    let text = std::fs::read_to_string("/etc/group").context("cannot read /etc/group")?;
    for line in text.lines() {
        let mut f = line.split(':');
        if f.next() == Some(name) {
            if let Some(gid) = f.nth(1).and_then(|g| g.parse().ok()) {
                return Ok(gid);
            }
        }
    }
    bail!("no such group in /etc/group")
}

/// Accepts clients until `stop`, then removes the socket file. `ids` numbers
/// the clients of every listener.
pub fn serve(
    listener: Listener,
    ids: Arc<AtomicU64>,
    bus: Arc<Bus>,
    handler: Handler,
    limits: Limits,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok(stream) => {
                let id = ids.fetch_add(1, Ordering::Relaxed) + 1;
                if bus.clients() >= limits.max_clients {
                    log::warn!("refusing client {id}: {} clients already", limits.max_clients);
                    let mut s = stream;
                    let _ = s.setup();
                    let _ = writeln!(s, "{}", error_reply("too many clients; try again later", None));
                    continue;
                }
                if let Err(e) = start_client(stream, id, &bus, handler.clone(), limits.requests_per_second, &stop) {
                    log::warn!("client {id}: {e:#}");
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                // EMFILE and the like: wait for descriptors to come free.
                log::warn!("accept on {} failed: {e}", listener.name());
                thread::sleep(Duration::from_millis(100));
            }
        }
    }
    bus.close_all();
    if let Listener::Unix(_, path) = &listener {
        let _ = std::fs::remove_file(path);
    }
}

/// Small stacks: a thousand clients are two thousand threads.
fn spawn(name: String, f: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
    thread::Builder::new().name(name).stack_size(128 * 1024).spawn(f).map(|_| ())
}

fn start_client(
    stream: Conn,
    id: u64,
    bus: &Arc<Bus>,
    handler: Handler,
    rate: f64,
    stop: &Arc<AtomicBool>,
) -> Result<()> {
    stream.setup()?;
    let reader = stream.try_clone()?;
    let client = bus.subscribe(id);
    log::info!("client {id} connected");
    let c = client.clone();
    let stop_w = stop.clone();
    spawn(format!("client-{id}-w"), move || write_loop(stream, c, stop_w))?;
    let stop_r = stop.clone();
    spawn(format!("client-{id}-r"), move || read_loop(reader, client, handler, rate, stop_r))?;
    Ok(())
}

fn write_loop(mut stream: Conn, client: Arc<Client>, stop: Arc<AtomicBool>) {
    while let Some(next) = client.next(Duration::from_millis(250)) {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let Some(line) = next else { continue };
        let ok = stream.write_all(line.as_bytes()).and_then(|_| stream.write_all(b"\n"));
        if let Err(e) = ok {
            log::info!("client {} gone ({e})", client.id);
            break;
        }
    }
    client.close();
    stream.shutdown();
}

fn read_loop(mut stream: Conn, client: Arc<Client>, handler: Handler, rate: f64, stop: Arc<AtomicBool>) {
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let mut bucket = TokenBucket::new(rate);
    let reply = |text: String| {
        client.send(text.into());
    };
    while !client.is_closed() && !stop.load(Ordering::Relaxed) {
        let n = match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {
                continue
            }
            Err(_) => break,
        };
        buf.extend_from_slice(&chunk[..n]);
        while let Some(end) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=end).collect();
            let line = line[..line.len() - 1].strip_suffix(b"\r").unwrap_or(&line[..line.len() - 1]);
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            if !bucket.take() {
                reply(error_reply(&format!("too many requests: at most {rate} a second"), None));
                continue;
            }
            match Request::parse(line) {
                Ok(req) => {
                    let id = req.id().cloned();
                    if let Err(message) = handler(req, &client) {
                        reply(error_reply(&message, id.as_ref()));
                    }
                }
                Err(e) => reply(error_reply(&e.to_string(), None)),
            }
        }
        // A line that never ends is cut off, and so is the client sending it.
        if buf.len() > MAX_REQUEST_BYTES {
            log::warn!("client {} sent a line over {MAX_REQUEST_BYTES} bytes: disconnecting it", client.id);
            reply(error_reply(&RequestError::TooLong.to_string(), None));
            // Let the writer send the reply before the connection goes.
            let until = Instant::now() + Duration::from_millis(500);
            while Instant::now() < until && !client.is_closed() {
                thread::sleep(Duration::from_millis(20));
            }
            break;
        }
    }
    client.close();
    stream.shutdown();
}

/// `rate` requests a second, with a burst of as many.
struct TokenBucket {
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    fn new(rate: f64) -> TokenBucket {
        TokenBucket { rate, tokens: rate.max(1.0), at: Instant::now() }
    }

    fn take(&mut self) -> bool {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * self.rate).min(self.rate.max(1.0));
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_bucket_allows_a_burst_then_refuses() {
        let mut b = TokenBucket::new(3.0);
        assert!(b.take() && b.take() && b.take());
        assert!(!b.take());
    }
}
