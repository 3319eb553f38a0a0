//! The daemon as a user runs it: a recorded camera stream in, events out on
//! stdout and the socket, questions answered, misbehaving clients cut off
//! without costing the others an event, a kiosk snapshot, a clean SIGTERM.

use std::{
    io::{BufRead, BufReader, Read, Write},
    os::unix::{fs::PermissionsExt, net::UnixStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_emoedge-firmware-host");

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("emoedge-daemon-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn record(dir: &Path, images: &[&str], repeat: usize) -> PathBuf {
    let out = dir.join("stream.yuyv");
    let mut cmd = Command::new(BIN);
    cmd.arg("record").arg("-o").arg(&out).arg("--repeat").arg(repeat.to_string());
    for i in images {
        cmd.arg(root().join("tests/data").join(i));
    }
    assert!(cmd.status().unwrap().success());
    out
}

fn start(dir: &Path, config: &str, extra: &[&str]) -> Child {
    let cfg = dir.join("daemon.toml");
    std::fs::write(&cfg, config).unwrap();
    Command::new(BIN)
        .arg("--config")
        .arg(&cfg)
        .args(extra)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn connect(path: &Path) -> UnixStream {
    let t = Instant::now();
    loop {
        match UnixStream::connect(path) {
            Ok(s) => return s,
            Err(_) if t.elapsed() < Duration::from_secs(60) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => panic!("cannot connect to {}: {e}", path.display()),
        }
    }
}

/// Reads lines until `until` says stop or `limit` passes.
fn read_until(r: &mut BufReader<UnixStream>, limit: Duration, mut until: impl FnMut(&Value) -> bool) -> Vec<Value> {
    r.get_ref().set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let (t, mut out, mut line) = (Instant::now(), Vec::new(), String::new());
    while t.elapsed() < limit {
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) => break,
            Ok(_) => {
                let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
                let done = until(&v);
                out.push(v);
                if done {
                    break;
                }
            }
            Err(_) => continue,
        }
    }
    out
}

/// The child's stdout and stderr, read on their own threads as they come.
struct Output(std::thread::JoinHandle<String>, std::thread::JoinHandle<String>);

fn drain(child: &mut Child) -> Output {
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    Output(
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        }),
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        }),
    )
}

fn stop(mut child: Child, output: Output) -> (i32, String, String) {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    (status.code().unwrap_or(-1), output.0.join().unwrap(), output.1.join().unwrap())
}

#[test]
fn events_questions_and_hostile_clients() {
    let dir = scratch("main");
    let stream = record(&dir, &["astronaut.png"], 1);
    let sock = dir.join("events.sock");
    let png = dir.join("kiosk.png");
    let config = format!(
        "[camera]\nrecording = {stream:?}\n[events]\nsocket = {sock:?}\nclient_queue = 64\n\
         [display]\ntarget = \"png\"\npng = {png:?}\npng_interval = 0.5\n[llm]\nmax_tokens = 24\n"
    );
    let mut child = start(&dir, &config, &[]);
    let output = drain(&mut child);

    let mut good = BufReader::new(connect(&sock));
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660, "socket mode {mode:o}");
    // A client that never reads, and one that sends garbage then a 10 MB line.
    let slow = connect(&sock);
    let mut hostile = connect(&sock);
    hostile.write_all(b"\x00\xff garbage\n{\"ask\": 3}\n").unwrap();
    let mut hostile_r = BufReader::new(hostile.try_clone().unwrap());
    let replies = read_until(&mut hostile_r, Duration::from_secs(20), |v| {
        v["type"] == "error" && v["message"].as_str().unwrap().contains("ask")
    });
    let errors: Vec<&Value> = replies.iter().filter(|v| v["type"] == "error").collect();
    assert!(errors.len() >= 2, "garbage got no error replies: {errors:?}");
    assert!(errors.iter().all(|e| e.get("seq").is_none()), "a reply carries a seq: {errors:?}");
    let big = vec![b'x'; 10 << 20];
    let _ = hostile.write_all(&big); // the daemon hangs up part-way
    let after = read_until(&mut hostile_r, Duration::from_secs(10), |_| false);
    assert!(
        after.iter().any(|v| v["type"] == "error" && v["message"].as_str().unwrap().contains("too long")),
        "{after:?}"
    );

    // The good client sees a face, asks about it, and gets the answer.
    let seen = read_until(&mut good, Duration::from_secs(60), |v| {
        v["type"] == "faces" && v["ids"].as_array().is_some_and(|a| !a.is_empty())
    });
    let face = seen.last().unwrap();
    assert_eq!(face["faces"][0]["expression"]["expression"], "happy", "{face}");
    let id = face["ids"][0].as_str().unwrap().to_string();
    writeln!(good.get_mut(), "{{\"ask\": \"Is she smiling?\", \"face\": {id}, \"id\": \"q1\"}}").unwrap();
    writeln!(good.get_mut(), "{{\"ask\": \"Who?\", \"face\": 999}}").unwrap();
    let rest = read_until(&mut good, Duration::from_secs(120), |v| v["type"] == "explanation" && v["request"] == "q1");
    let answer = rest.last().unwrap();
    assert_eq!(answer["trigger"], "ask", "no answer: {answer}");
    assert!(!answer["text"].as_str().unwrap().trim().is_empty());
    assert!(rest.iter().any(|v| v["type"] == "error" && v["message"].as_str().unwrap().contains("no face 999")));
    // Long enough for the slow client's socket buffer and queue to fill.
    let more = read_until(&mut good, Duration::from_secs(12), |_| false);
    drop(slow);

    let (code, stdout, stderr) = stop(child, output);
    assert_eq!(code, 0, "exit {code}: {stderr}");
    assert!(stderr.contains("disconnecting it"), "the slow client was never cut off:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let summary = stderr.lines().find(|l| l.starts_with("firmware-host: frames=")).expect("no summary line");
    println!("{summary}");

    // No event lost: the good client's sequence numbers have no gap.
    let seqs: Vec<u64> = seen.iter().chain(&rest).chain(&more).filter_map(|v| v["seq"].as_u64()).collect();
    let lost: u64 = seqs.windows(2).map(|w| w[1] - w[0] - 1).sum();
    println!("good client: {} events, {lost} lost", seqs.len());
    assert_eq!(lost, 0);
    assert!(seqs.len() > 100);

    // stdout carries the same stream, and every line fits the schema.
    let events = dir.join("stdout.jsonl");
    std::fs::write(&events, &stdout).unwrap();
    assert!(stdout.lines().count() >= seqs.len());
    let py = root().join(".venv-ref/bin/python");
    let v = Command::new(&py)
        .arg(root().join("tests/reference/validate_events.py"))
        .arg(root().join("firmware-host/hri-events.schema.json"))
        .arg(&events)
        .output()
        .unwrap_or_else(|e| panic!("{} ({e}): run `bash .ci/setup`", py.display()));
    let said = String::from_utf8_lossy(&v.stdout);
    assert!(v.status.success(), "schema: {said}");
    println!("schema: {said}");
    // The replies validate too.
    std::fs::write(&events, replies.iter().map(|v| format!("{v}\n")).collect::<String>()).unwrap();
    let v = Command::new(&py)
        .arg(root().join("tests/reference/validate_events.py"))
        .arg(root().join("firmware-host/hri-events.schema.json"))
        .arg(&events)
        .output()
        .unwrap();
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stdout));

    let kiosk = image::open(&png).expect("no kiosk snapshot");
    assert_eq!((kiosk.width(), kiosk.height()), (800, 480));
    assert!(!sock.exists(), "the socket file outlived the daemon");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_broken_camera_is_reported_and_the_daemon_keeps_running() {
    let dir = scratch("camera");
    let bad = dir.join("bad.yuyv");
    std::fs::write(&bad, b"not a whole frame").unwrap();
    let config = format!(
        "[camera]\nrecording = {bad:?}\nmax_backoff = 0.5\n[events]\nsocket = \"{}\"\n",
        dir.join("s").display()
    );
    let child = start(&dir, &config, &["--no-llm", "--display", "off", "--duration", "3"]);
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let lost: Vec<&str> = stdout.lines().filter(|l| l.contains("\"camera\"") && l.contains("\"lost\"")).collect();
    assert_eq!(lost.len(), 1, "the outage is reported once, not per retry:\n{stdout}");
    assert!(lost[0].contains("not a whole number"), "{}", lost[0]);
    assert!(stderr.contains("still unavailable"), "no retries: {stderr}");
    // A camera device that does not exist: the same, with the device's name.
    let config = format!(
        "[camera]\ndevice = \"{}\"\n[events]\nsocket = \"{}\"\n",
        dir.join("video9").display(),
        dir.join("s").display()
    );
    let out = start(&dir, &config, &["--no-llm", "--display", "off", "--duration", "1.5"]).wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("cannot open"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_setups_exit_with_their_codes() {
    let dir = scratch("setup");
    let run = |config: &str, extra: &[&str]| {
        let out = start(&dir, config, extra).wait_with_output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).to_string())
    };
    let (code, err) = run("[camera]\nwidht = 640\n", &["--no-llm"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("daemon.toml") && err.contains("widht"), "{err}");
    let (code, err) = run("", &["--no-llm", "--no-socket", "--models", "/nonexistent/models"]);
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("/nonexistent/models"), "{err}");
    // A path that is not a socket is never replaced.
    let file = dir.join("not-a-socket");
    std::fs::write(&file, "keep me").unwrap();
    let (code, err) = run(&format!("[events]\nsocket = {file:?}\n"), &["--no-llm"]);
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
    let help = Command::new(BIN).arg("--help").output().unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("Exit codes"));
    let printed = Command::new(BIN).arg("--print-config").output().unwrap();
    assert!(String::from_utf8_lossy(&printed.stdout).contains("[camera]"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Reads lines from any stream for `limit`, returning the sequence numbers seen.
fn seqs_for(stream: impl Read, limit: Duration) -> Vec<u64> {
    timed_seqs_for(stream, limit).into_iter().map(|(s, _)| s).collect()
}

/// As [`seqs_for`], with when each event arrived.
fn timed_seqs_for(stream: impl Read, limit: Duration) -> Vec<(u64, Instant)> {
    let t = Instant::now();
    let mut r = BufReader::new(stream);
    let mut seqs = Vec::new();
    let mut line = String::new();
    while t.elapsed() < limit {
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) => break,
            Ok(_) => {
                if let Some(s) = serde_json::from_str::<Value>(&line).ok().and_then(|v| v["seq"].as_u64()) {
                    seqs.push((s, Instant::now()))
                }
            }
            Err(_) => continue,
        }
    }
    seqs
}

fn lost(seqs: &[u64]) -> u64 {
    seqs.windows(2).map(|w| w[1] - w[0] - 1).sum()
}

#[test]
fn a_thousand_clients_at_once_cost_the_others_nothing() {
    // The test holds 1000 sockets too.
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max.min(65536);
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
    assert!(lim.rlim_cur >= 2048, "open-file limit {} is too low for this test", lim.rlim_cur);
    let dir = scratch("thousand");
    let stream = record(&dir, &["astronaut.png"], 1);
    let sock = dir.join("events.sock");
    let config = format!(
        "[camera]\nrecording = {stream:?}\n[events]\nsocket = {sock:?}\nstdout = \"off\"\nclient_queue = 128\n\
         [display]\ntarget = \"off\"\n[llm]\nenabled = false\n"
    );
    let mut child = start(&dir, &config, &[]);
    let output = drain(&mut child);
    let good = connect(&sock);
    good.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let reader = std::thread::spawn(move || timed_seqs_for(good, Duration::from_secs(20)));
    // The good client's own rate before the crowd is the yardstick: an
    // absolute frame rate would measure the machine, not the daemon.
    std::thread::sleep(Duration::from_secs(5));
    // A thousand clients at once, none of which ever reads.
    let t = Instant::now();
    let crowd: Vec<UnixStream> = (0..1000).map(|_| connect(&sock)).collect();
    println!("1000 clients connected in {:.2} s", t.elapsed().as_secs_f64());
    let timed = reader.join().unwrap();
    drop(crowd);
    let (code, _, stderr) = stop(child, output);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let refused = stderr.matches("refusing client").count();
    let cut = stderr.matches("disconnecting it").count();
    let seqs: Vec<u64> = timed.iter().map(|(s, _)| *s).collect();
    println!(
        "good client: {} events, {} lost; crowd: {refused} refused, {cut} cut off as too slow",
        seqs.len(),
        lost(&seqs)
    );
    assert_eq!(refused, 0, "max_clients is 1024");
    assert_eq!(lost(&seqs), 0);
    // Events per second from the first event to the crowd, and after it.
    let rate = |from: Instant, to: Instant| {
        let n = timed.iter().filter(|(_, at)| *at >= from && *at < to).count();
        n as f64 / to.duration_since(from).as_secs_f64().max(1e-3)
    };
    let (first, last) = (timed.first().map(|e| e.1), timed.last().map(|e| e.1));
    let (Some(first), Some(last)) = (first, last) else { panic!("the good client got no event") };
    assert!(first < t && last > t, "the good client's events did not span the crowd's arrival");
    let (before, during) = (rate(first, t), rate(t, last));
    println!("good client: {before:.1} events/s before the crowd, {during:.1} with it");
    assert!(during >= 0.6 * before, "the crowd cut the good client from {before:.1} to {during:.1} events/s");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn tcp_listens_on_loopback_only() {
    let dir = scratch("tcp");
    let stream = record(&dir, &["astronaut.png"], 1);
    // A free port: bound, then released for the daemon.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = format!(
        "[camera]\nrecording = {stream:?}\n[events]\nsocket = \"{}\"\ntcp = \"127.0.0.1:{port}\"\nstdout = \"off\"\n\
         [display]\ntarget = \"off\"\n[llm]\nenabled = false\n",
        dir.join("s").display()
    );
    let mut child = start(&dir, &config, &[]);
    let output = drain(&mut child);
    let t = Instant::now();
    let tcp = loop {
        match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => break s,
            Err(_) if t.elapsed() < Duration::from_secs(60) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => panic!("no TCP listener: {e}"),
        }
    };
    tcp.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut w = tcp.try_clone().unwrap();
    writeln!(w, "not json").unwrap();
    let mut r = BufReader::new(tcp);
    let (mut got_error, mut seqs, mut line) = (false, Vec::new(), String::new());
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(5) {
        line.clear();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            continue;
        }
        let v: Value = serde_json::from_str(&line).unwrap();
        got_error |= v["type"] == "error";
        if let Some(s) = v["seq"].as_u64() {
            seqs.push(s);
        }
    }
    let (code, _, stderr) = stop(child, output);
    assert_eq!(code, 0, "{stderr}");
    assert!(got_error && seqs.len() > 50 && lost(&seqs) == 0, "error reply {got_error}, {} events", seqs.len());
    // Anything but loopback is refused before the daemon starts.
    for addr in ["0.0.0.0:7878", "[::]:7878", "10.1.2.3:7878"] {
        let cfg = format!("[events]\ntcp = \"{addr}\"\n");
        let out = start(&dir, &cfg, &["--no-llm"]).wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{addr} accepted");
        assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"), "{addr}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn started_as_root_it_drops_to_the_configured_user() {
    let dir = scratch("user");
    let stream = record(&dir, &["astronaut.png"], 1);
    let sock = dir.join("events.sock");
    let config = format!(
        "[camera]\nrecording = {stream:?}\n[events]\nsocket = {sock:?}\nstdout = \"off\"\n[display]\ntarget = \"off\"\n\
         [llm]\nenabled = false\n[service]\nuser = \"nobody\"\n"
    );
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        // Not root: the key must be refused with a reason, not ignored.
        let out = start(&dir, &config, &[]).wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("started as root"));
        return;
    }
    let mut child = start(&dir, &config, &[]);
    let output = drain(&mut child);
    let events = seqs_for(connect(&sock), Duration::from_secs(4));
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap().to_string();
    let (code, _, stderr) = stop(child, output);
    assert_eq!(code, 0, "{stderr}");
    // real, effective, saved and filesystem uid: all nobody's.
    assert_eq!(uid.split_whitespace().skip(1).collect::<Vec<_>>(), ["65534"; 4], "{uid}");
    assert!(stderr.contains("running as nobody"), "{stderr}");
    assert!(events.len() > 20, "no events after dropping privileges");
    let out = start(&dir, &config.replace("nobody", "no-such-user-here"), &[]).wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_systemd_unit_is_hardened() {
    let unit = root().join("firmware-host/emoedge-firmware-host.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    for key in [
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "DeviceAllow=char-video4linux",
        "DeviceAllow=/dev/fb0",
        "SystemCallFilter=",
    ] {
        assert!(text.contains(key), "the unit lacks {key}");
    }
    let out = Command::new("systemd-analyze")
        // The threshold is in tenths of the printed exposure level: 30 is 3.0.
        .args(["security", "--offline=yes", "--threshold=30"])
        .arg(&unit)
        .output()
        .expect("systemd-analyze (Debian's systemd package; bash .ci/setup installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    let overall = text.lines().find(|l| l.contains("Overall exposure level")).unwrap_or_default();
    println!("{overall}");
    let level: f64 = overall.split(':').nth(1).and_then(|v| v.split_whitespace().next()?.parse().ok()).unwrap_or(99.0);
    assert!(level <= 3.0, "{overall}");
    assert!(out.status.success(), "exposure above 3.0: {overall}\n{}", String::from_utf8_lossy(&out.stderr));
}

/// RSS in KiB: in all, anonymous (the heap, stacks) and file-backed (the
/// mapped LLM weights, the binary's pages).
fn rss_kib(pid: u32) -> Option<[u64; 3]> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        status.lines().find(|l| l.starts_with(name))?.split_whitespace().nth(1)?.parse().ok()
    };
    Some([field("VmRSS:")?, field("RssAnon:")?, field("RssFile:")?])
}

/// The daemon under a steady churn: faces come and go every 3 s (so tracks are
/// born, explained and lost), a client connects, asks, and leaves every
/// second, and one client stays all along. After a warm-up, RSS is read every
/// second and kept as one median a minute (at least ten).
/// `EMOEDGE_SOAK_SECONDS` sets the length (CI: 90; the 30-minute run: 1800),
/// and the growth is reported per hour.
#[test]
fn soak_rss_stays_flat_and_no_event_is_lost() {
    let seconds: u64 = std::env::var("EMOEDGE_SOAK_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(90);
    let dir = scratch("soak");
    let stream = record(&dir, &["astronaut.png", "chelsea.png"], 45);
    let sock = dir.join("events.sock");
    let config = format!(
        "[camera]\nrecording = {stream:?}\n[events]\nsocket = {sock:?}\nstdout = \"off\"\nrequests_per_second = 20.0\n\
         [display]\ntarget = \"png\"\npng = \"{}\"\npng_interval = 1.0\n[llm]\nmax_tokens = 16\n\
         [analysis.track]\nmax_missed = 5\n",
        dir.join("kiosk.png").display()
    );
    let mut child = start(&dir, &config, &[]);
    let pid = child.id();
    let output = drain(&mut child);
    let keeper = connect(&sock);
    keeper.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let total = Duration::from_secs(seconds + 15);
    let reader = std::thread::spawn(move || seqs_for(keeper, total));
    // The churn: a new client every second that asks about face 0 and leaves.
    let halt = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let churn = {
        let (sock, halt) = (sock.clone(), halt.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !halt.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(mut s) = UnixStream::connect(&sock) {
                    let _ = writeln!(s, "{{\"ask\": \"What changed?\", \"face\": 0}}");
                    let _ = s.set_read_timeout(Some(Duration::from_millis(300)));
                    let _ = s.read(&mut [0u8; 4096]);
                    n += 1;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
            n
        })
    };
    // Warm-up: models, the LLM, the first tracks and allocator pools.
    std::thread::sleep(Duration::from_secs(15));
    let t0 = Instant::now();
    // One point a minute (at least ten): the median of one reading a second
    // over that span. A single reading lands on whatever frame or explanation
    // is in flight, and scatters by ±4 MiB; the median does not.
    let n = (seconds / 60).max(10);
    let mut samples: Vec<(f64, [u64; 3])> = Vec::new();
    for i in 1..=n {
        let end = Duration::from_secs_f64(seconds as f64 * i as f64 / n as f64);
        let mut readings = Vec::new();
        while t0.elapsed() < end {
            readings.push(rss_kib(pid).expect("the daemon died"));
            std::thread::sleep(Duration::from_secs(1).min(end.saturating_sub(t0.elapsed())));
        }
        let median = |k: usize| {
            let mut v: Vec<u64> = readings.iter().map(|r| r[k]).collect();
            v.sort_unstable();
            v[v.len() / 2]
        };
        samples.push((t0.elapsed().as_secs_f64(), [median(0), median(1), median(2)]));
    }
    halt.store(true, std::sync::atomic::Ordering::Relaxed);
    let churned = churn.join().unwrap();
    let seqs = reader.join().unwrap();
    let (code, _, stderr) = stop(child, output);
    assert_eq!(code, 0, "{stderr}");
    // Least-squares slope of RSS (k: total, anonymous, file-backed) over
    // time, in MiB per hour.
    let slope = |s: &[(f64, [u64; 3])], k: usize| {
        let n = s.len() as f64;
        let (mt, mr) = (s.iter().map(|s| s.0).sum::<f64>() / n, s.iter().map(|s| s.1[k] as f64).sum::<f64>() / n);
        let num: f64 = s.iter().map(|s| (s.0 - mt) * (s.1[k] as f64 - mr)).sum();
        num / s.iter().map(|s| (s.0 - mt).powi(2)).sum::<f64>() * 3600.0 / 1024.0
    };
    let half = &samples[samples.len() / 2..];
    let (all, steady) = (slope(&samples, 0), slope(half, 0));
    let growth = (samples.last().unwrap().1[0] as f64 - samples[0].1[0] as f64) / 1024.0;
    let summary = stderr.lines().find(|l| l.starts_with("firmware-host:")).unwrap_or_default();
    for (k, what) in ["RSS", "anonymous RSS", "file-backed RSS"].iter().enumerate() {
        println!(
            "soak: {what} KiB (medians, one a minute or a tenth of the run) {:?}; slope {:+.2} MiB/h over the run, {:+.2} MiB/h over the second half",
            samples.iter().map(|s| s.1[k]).collect::<Vec<_>>(),
            slope(&samples, k),
            slope(half, k)
        );
    }
    println!(
        "soak: {seconds} s, {churned} churning clients; RSS growth {growth:+.2} MiB over the run; \
         kept client {} events, {} lost",
        seqs.len(),
        lost(&seqs)
    );
    println!("{summary}");
    assert_eq!(lost(&seqs), 0, "the steady client lost events");
    assert!(summary.contains("explanations="), "{summary}");
    assert!(churned as u64 >= seconds / 2);
    // Short runs cannot resolve 1 MiB/h from allocator noise; they bound the
    // growth itself. The long run holds the steady state (its second half)
    // to 1 MiB/h: in its first ten minutes RSS still fills by 1–3 MiB, then
    // stays flat (the figures printed above show both).
    if seconds >= 1200 {
        assert!(steady < 1.0, "RSS grows {steady:.2} MiB/h once warm ({all:+.2} MiB/h over the whole run)");
    } else {
        assert!(growth < 4.0, "RSS grew {growth:.2} MiB in {seconds} s");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
