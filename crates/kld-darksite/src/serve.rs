//! A small static HTTP/1.1 server for a darksite's current publication,
//! enough for apt, debootstrap and mmdebstrap on a LAN: `GET` and `HEAD`,
//! keep-alive, byte ranges (for resumed downloads), no directory listings,
//! nothing outside the publication (no `..`, no dot-files, symbolic links
//! followed only within it). `current` is looked up on each request, so an
//! update or a rollback takes effect at once. Every client is bounded (see
//! [`Limits`]): line, header and head sizes, a deadline for each whole
//! request head, and a cap on connections that sheds the slowest.

use std::collections::HashMap;
use std::io::{Read, Seek, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::verify::publication_root;

/// How many connections are open at once, by default ([`Limits`]).
pub const MAX_CONNECTIONS: usize = 512;

/// What one client may take of the server. Past a limit the request is
/// answered with the status that fits and the connection closed:
///
/// - a request line longer than `line`: 414; a header line longer than
///   `line`, more than `headers` header lines, or a request head larger than
///   `head`: 431; a request with a body (GET and HEAD have none): 413;
/// - a request head not complete within `deadline` of the connection's
///   start (or of the end of the previous response on a kept-alive
///   connection): 408 — a deadline for the whole head, not per read;
/// - a write that cannot progress for `write_idle`: the connection is
///   dropped.
///
/// At most `connections` are open at once (fewer if the limit on open
/// files, raised to its hard limit, allows fewer), each on a thread of its
/// own with a small stack. When that many are open, the one that has waited
/// longest for its next request (a slow or idle client) is closed to make
/// room; if every one is busy sending, the newcomer gets 503. A flood of
/// slow clients thus costs at most `connections` small threads and buffers
/// and cannot keep a client that sends its request promptly out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once.
    pub connections: usize,
    /// Bytes in the request line or in one header line.
    pub line: usize,
    /// Header lines in a request.
    pub headers: usize,
    /// Bytes in a request head (request line and headers).
    pub head: usize,
    /// Time for a whole request head.
    pub deadline: Duration,
    /// Time a write may wait for the client to read.
    pub write_idle: Duration,
}

impl Default for Limits {
    /// 512 connections, 8 KiB lines, 64 headers, a 16 KiB head, 10 s for
    /// a request head, 30 s for a write.
    fn default() -> Limits {
        Limits {
            connections: MAX_CONNECTIONS,
            line: 8 << 10,
            headers: 64,
            head: 16 << 10,
            deadline: Duration::from_secs(10),
            write_idle: Duration::from_secs(30),
        }
    }
}

/// A bound server.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    dir: PathBuf,
    limits: Limits,
}

/// An open connection, as the accept loop sees it.
struct Slot {
    stream: TcpStream,
    /// Since when it has been waiting for (the rest of) a request; `None`
    /// while a response is being sent.
    waiting_since: Option<Instant>,
}

type Registry = Arc<Mutex<HashMap<u64, Slot>>>;

fn locked(r: &Registry) -> std::sync::MutexGuard<'_, HashMap<u64, Slot>> {
    r.lock().unwrap_or_else(|p| p.into_inner())
}

impl Server {
    /// Binds `addr` (e.g. `127.0.0.1:8080`) to serve the darksite in `dir`
    /// (or a publication directory), with the default [`Limits`].
    pub fn bind(dir: &Path, addr: &str) -> std::io::Result<Server> {
        Ok(Server {
            listener: TcpListener::bind(addr)?,
            dir: dir.to_owned(),
            limits: Limits::default(),
        })
    }

    /// Other limits than the default ones.
    pub fn limits(mut self, limits: Limits) -> Server {
        self.limits = limits;
        self
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until the process ends.
    pub fn run(self) -> std::io::Result<()> {
        let registry: Registry = Arc::new(Mutex::new(HashMap::new()));
        let dir = Arc::new(self.dir);
        let mut limits = self.limits;
        // Each connection takes two descriptors (its stream, and the handle
        // that can close it to make room): as many as the process may open.
        limits.connections = limits.connections.min(descriptor_budget() / 2).max(1);
        let next = AtomicU64::new(0);
        for stream in self.listener.incoming() {
            let Ok(mut stream) = stream else {
                // Out of file descriptors, most likely: let some close.
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            let Ok(clone) = stream.try_clone() else {
                continue;
            };
            {
                let mut reg = locked(&registry);
                if reg.len() >= limits.connections.max(1) {
                    let oldest = reg
                        .iter()
                        .filter_map(|(id, s)| s.waiting_since.map(|t| (t, *id)))
                        .min();
                    match oldest {
                        Some((_, id)) => {
                            if let Some(slot) = reg.remove(&id) {
                                let _ = slot.stream.shutdown(Shutdown::Both);
                            }
                        }
                        None => {
                            drop(reg);
                            let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
                            let _ = respond_status(&mut stream, 503, "Service Unavailable", true);
                            continue;
                        }
                    }
                }
                let id = next.fetch_add(1, Ordering::Relaxed);
                reg.insert(
                    id,
                    Slot {
                        stream: clone,
                        waiting_since: Some(Instant::now()),
                    },
                );
                let (registry, dir) = (Arc::clone(&registry), Arc::clone(&dir));
                let spawned = std::thread::Builder::new()
                    .stack_size(128 << 10)
                    .spawn(move || {
                        let _ = connection(stream, &dir, &limits, &registry, id);
                        locked(&registry).remove(&id);
                    });
                if spawned.is_err() {
                    reg.remove(&id);
                }
            }
        }
        Ok(())
    }
}

/// How many descriptors connections may use: the soft limit on open files
/// (raised to the hard limit first), less a margin for the rest.
fn descriptor_budget() -> usize {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut lim = getrlimit(Resource::Nofile);
    if lim.current != lim.maximum {
        let raised = rustix::process::Rlimit {
            current: lim.maximum,
            maximum: lim.maximum,
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            lim = raised;
        }
    }
    let soft = lim.current.map_or(usize::MAX, |c| c as usize);
    soft.saturating_sub(64)
}

/// A parsed request head.
struct Request {
    method: String,
    target: String,
    close: bool,
    range: Option<(u64, Option<u64>)>,
    body: bool,
}

/// Why a request head is refused.
enum Refusal {
    /// Closed by the client (or by eviction) before a whole head.
    Gone,
    /// A status to answer with, then close.
    Status(u16, &'static str),
}

/// Reads one request head into `buf` (which may already hold pipelined
/// bytes), within `limits`; returns it and leaves what follows in `buf`.
fn read_head(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    limits: &Limits,
) -> Result<Request, Refusal> {
    let deadline = Instant::now() + limits.deadline;
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = head_end(buf) {
            let head: Vec<u8> = buf.drain(..end).collect();
            return parse_head(&head, limits);
        }
        let first_line = buf.iter().position(|&b| b == b'\n').unwrap_or(buf.len());
        if first_line > limits.line {
            return Err(Refusal::Status(414, "URI Too Long"));
        }
        if buf.len() > limits.head {
            return Err(Refusal::Status(431, "Request Header Fields Too Large"));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let timeout = || {
            if buf.iter().all(|b| b.is_ascii_whitespace()) {
                Refusal::Gone
            } else {
                Refusal::Status(408, "Request Timeout")
            }
        };
        if left.is_zero() {
            return Err(timeout());
        }
        if stream.set_read_timeout(Some(left)).is_err() {
            return Err(Refusal::Gone);
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Err(Refusal::Gone),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(timeout())
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return Err(Refusal::Gone),
        }
    }
}

/// Where the head in `buf` ends (after its blank line), if it does.
fn head_end(buf: &[u8]) -> Option<usize> {
    let mut start = 0;
    // Blank lines before a request line are skipped, as RFC 9112 allows.
    while start < buf.len() && (buf[start] == b'\r' || buf[start] == b'\n') {
        start += 1;
    }
    let mut i = start;
    while let Some(p) = buf[i..].iter().position(|&b| b == b'\n') {
        let nl = i + p;
        let line = &buf[i..nl];
        if (line.is_empty() || line == b"\r") && nl > start {
            return Some(nl + 1);
        }
        i = nl + 1;
    }
    None
}

fn parse_head(head: &[u8], limits: &Limits) -> Result<Request, Refusal> {
    let bad = Refusal::Status(400, "Bad Request");
    let text = std::str::from_utf8(head).map_err(|_| Refusal::Status(400, "Bad Request"))?;
    let mut lines = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .skip_while(|l| l.is_empty());
    let request = lines.next().ok_or(Refusal::Status(400, "Bad Request"))?;
    if request.len() > limits.line {
        return Err(Refusal::Status(414, "URI Too Long"));
    }
    let parts: Vec<&str> = request.split_whitespace().collect();
    let [method, target, version] = parts[..] else {
        return Err(bad);
    };
    if !version.starts_with("HTTP/1.") {
        return Err(bad);
    }
    let mut req = Request {
        method: method.to_owned(),
        target: target.to_owned(),
        close: version == "HTTP/1.0",
        range: None,
        body: false,
    };
    let mut count = 0;
    for h in lines.take_while(|l| !l.is_empty()) {
        count += 1;
        if count > limits.headers || h.len() > limits.line {
            return Err(Refusal::Status(431, "Request Header Fields Too Large"));
        }
        let Some((name, value)) = h.split_once(':') else {
            return Err(Refusal::Status(400, "Bad Request"));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("range") {
            req.range = parse_range(value);
        } else if name.eq_ignore_ascii_case("connection") {
            if value.eq_ignore_ascii_case("close") {
                req.close = true;
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            req.body |= value != "0";
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            req.body = true;
        }
    }
    Ok(req)
}

fn set_waiting(registry: &Registry, id: u64, waiting: bool) -> bool {
    match locked(registry).get_mut(&id) {
        Some(slot) => {
            slot.waiting_since = waiting.then(Instant::now);
            true
        }
        // Evicted to make room.
        None => false,
    }
}

fn connection(
    mut stream: TcpStream,
    dir: &Path,
    limits: &Limits,
    registry: &Registry,
    id: u64,
) -> std::io::Result<()> {
    stream.set_write_timeout(Some(limits.write_idle))?;
    let mut buf = Vec::new();
    loop {
        let req = match read_head(&mut stream, &mut buf, limits) {
            Ok(r) => r,
            Err(Refusal::Gone) => return Ok(()),
            Err(Refusal::Status(code, text)) => {
                respond_status(&mut stream, code, text, true)?;
                linger_close(stream);
                return Ok(());
            }
        };
        if !set_waiting(registry, id, false) {
            return Ok(());
        }
        if req.body {
            respond_status(&mut stream, 413, "Content Too Large", true)?;
            linger_close(stream);
            return Ok(());
        }
        let head = match req.method.as_str() {
            "GET" => false,
            "HEAD" => true,
            _ => {
                respond_status(&mut stream, 405, "Method Not Allowed", req.close)?;
                if req.close || !set_waiting(registry, id, true) {
                    return Ok(());
                }
                continue;
            }
        };
        match resolve(dir, &req.target) {
            Some(path) => send_file(&mut stream, &path, head, req.range)?,
            None => respond_status(&mut stream, 404, "Not Found", req.close)?,
        }
        stream.flush()?;
        if req.close || !set_waiting(registry, id, true) {
            return Ok(());
        }
    }
}

/// Closes after an error answer so that the client reads it: a close with
/// unread bytes would reset the connection and lose the answer. What the
/// client still sends is read and dropped, for at most a second and
/// 256 KiB.
fn linger_close(mut stream: TcpStream) {
    let _ = stream.flush();
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(250)));
    let until = Instant::now() + Duration::from_secs(1);
    let mut sink = [0u8; 4096];
    let mut total = 0;
    while total < (256 << 10) && Instant::now() < until {
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n,
        }
    }
}

/// `bytes=N-` or `bytes=N-M`.
fn parse_range(value: &str) -> Option<(u64, Option<u64>)> {
    let spec = value.strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let start = a.trim().parse().ok()?;
    let end = if b.trim().is_empty() {
        None
    } else {
        Some(b.trim().parse().ok()?)
    };
    Some((start, end))
}

/// The file a request target names inside the current publication.
pub fn resolve(dir: &Path, target: &str) -> Option<PathBuf> {
    let path = target.split(['?', '#']).next()?;
    let decoded = percent_decode(path)?;
    let root = publication_root(dir).canonicalize().ok()?;
    let mut full = root.clone();
    for seg in decoded.split('/').filter(|s| !s.is_empty()) {
        if seg.starts_with('.') || seg.contains('\0') {
            return None;
        }
        full.push(seg);
    }
    let real = full.canonicalize().ok()?;
    (real.starts_with(&root) && real.is_file()).then_some(real)
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn respond_status(out: &mut TcpStream, code: u16, text: &str, close: bool) -> std::io::Result<()> {
    let body = format!("{code} {text}\n");
    write!(
        out,
        "HTTP/1.1 {code} {text}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{}\r\n{body}",
        body.len(),
        if close { "Connection: close\r\n" } else { "" }
    )
}

fn send_file(
    out: &mut TcpStream,
    path: &Path,
    head: bool,
    range: Option<(u64, Option<u64>)>,
) -> std::io::Result<()> {
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    let (status, start, end) = match range {
        Some((s, e)) if s < len => {
            let e = e.unwrap_or(len - 1).min(len - 1);
            if e < s {
                (200, 0, len)
            } else {
                (206, s, e + 1)
            }
        }
        Some(_) if len > 0 => {
            write!(
                out,
                "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\nContent-Length: 0\r\n\r\n"
            )?;
            return Ok(());
        }
        _ => (200, 0, len),
    };
    let mut headers = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nAccept-Ranges: bytes\r\n",
        status,
        if status == 206 { "Partial Content" } else { "OK" },
        end - start
    );
    if status == 206 {
        headers.push_str(&format!(
            "Content-Range: bytes {start}-{}/{len}\r\n",
            end - 1
        ));
    }
    headers.push_str("\r\n");
    out.write_all(headers.as_bytes())?;
    if !head {
        f.seek(std::io::SeekFrom::Start(start))?;
        std::io::copy(&mut (&mut f).take(end - start), out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_files_ranges_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let pubdir = dir.path().join("releases/1");
        std::fs::create_dir_all(pubdir.join("dists/x")).unwrap();
        std::fs::write(pubdir.join("dists/x/Release"), b"0123456789").unwrap();
        std::fs::create_dir_all(dir.path().join(".kdarksite")).unwrap();
        std::fs::write(dir.path().join(".kdarksite/signing-key.asc"), b"secret").unwrap();
        std::os::unix::fs::symlink("releases/1", dir.path().join("current")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", pubdir.join("escape")).unwrap();
        let server = Server::bind(dir.path(), "127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        std::thread::spawn(move || server.run());
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let get = |path: &str, range: Option<&str>| {
            let mut req = agent.get(format!("http://{addr}{path}"));
            if let Some(r) = range {
                req = req.header("Range", r);
            }
            let mut resp = req.call().unwrap();
            (
                resp.status().as_u16(),
                resp.body_mut().read_to_string().unwrap(),
            )
        };
        assert_eq!(get("/dists/x/Release", None), (200, "0123456789".into()));
        assert_eq!(
            get("/dists/x/Release", Some("bytes=4-")),
            (206, "456789".into())
        );
        assert_eq!(
            get("/dists/x/Release", Some("bytes=2-3")),
            (206, "23".into())
        );
        assert_eq!(get("/dists/%78/Release", None).0, 200);
        assert_eq!(get("/dists/x/Release", Some("bytes=99-")).0, 416);
        assert_eq!(get("/dists/x/../x/Release", None).0, 404);
        assert_eq!(get("/../.kdarksite/signing-key.asc", None).0, 404);
        assert_eq!(get("/escape", None).0, 404);
        assert_eq!(get("/dists", None).0, 404);
        assert_eq!(get("/nope", None).0, 404);
    }

    fn small_server() -> (tempfile::TempDir, SocketAddr) {
        let dir = tempfile::tempdir().unwrap();
        let pubdir = dir.path().join("releases/1");
        std::fs::create_dir_all(pubdir.join("dists/x")).unwrap();
        std::fs::write(pubdir.join("dists/x/Release"), b"0123456789").unwrap();
        std::os::unix::fs::symlink("releases/1", dir.path().join("current")).unwrap();
        let server = Server::bind(dir.path(), "127.0.0.1:0")
            .unwrap()
            .limits(Limits {
                connections: 4,
                line: 1024,
                headers: 8,
                head: 4096,
                deadline: Duration::from_millis(1500),
                write_idle: Duration::from_secs(5),
            });
        let addr = server.local_addr().unwrap();
        std::thread::spawn(move || server.run());
        (dir, addr)
    }

    /// Sends `parts` (pausing `pause` between them) and returns the status
    /// line of the answer.
    fn exchange(addr: SocketAddr, parts: &[&[u8]], pause: Duration) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        for p in parts {
            if s.write_all(p).is_err() {
                break;
            }
            std::thread::sleep(pause);
        }
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out)
            .lines()
            .next()
            .unwrap_or("")
            .to_owned()
    }

    #[test]
    fn oversized_malformed_and_slow_requests_are_refused_by_status() {
        let (_dir, addr) = small_server();
        let ok = exchange(
            addr,
            &[b"GET /dists/x/Release HTTP/1.0\r\n\r\n"],
            Duration::ZERO,
        );
        assert_eq!(ok, "HTTP/1.1 200 OK");
        let long_target = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(2000));
        assert_eq!(
            exchange(addr, &[long_target.as_bytes()], Duration::ZERO),
            "HTTP/1.1 414 URI Too Long"
        );
        // A request line with no end at all is cut off at the line limit.
        let endless = vec![b'a'; 64 << 10];
        assert_eq!(
            exchange(addr, &[&endless], Duration::ZERO),
            "HTTP/1.1 414 URI Too Long"
        );
        let long_header = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "b".repeat(2000));
        assert_eq!(
            exchange(addr, &[long_header.as_bytes()], Duration::ZERO),
            "HTTP/1.1 431 Request Header Fields Too Large"
        );
        let many = format!("GET / HTTP/1.1\r\n{}\r\n", "X: y\r\n".repeat(20));
        assert_eq!(
            exchange(addr, &[many.as_bytes()], Duration::ZERO),
            "HTTP/1.1 431 Request Header Fields Too Large"
        );
        assert_eq!(
            exchange(
                addr,
                &[b"GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"],
                Duration::ZERO
            ),
            "HTTP/1.1 413 Content Too Large"
        );
        assert_eq!(
            exchange(addr, &[b"\x01\x02 nonsense\r\n\r\n"], Duration::ZERO),
            "HTTP/1.1 400 Bad Request"
        );
        // A head dribbled a byte at a time never completes within the
        // deadline, though no single read waits long: 408.
        let dribble: Vec<&[u8]> = b"GET /dists/x/Release HTTP/1.1\r\nHost: x\r\n\r\n"
            .chunks(1)
            .collect();
        assert_eq!(
            exchange(addr, &dribble, Duration::from_millis(200)),
            "HTTP/1.1 408 Request Timeout"
        );
    }

    #[test]
    fn slow_clients_beyond_the_cap_do_not_lock_others_out() {
        let (_dir, addr) = small_server();
        // Twice the cap of clients that never finish their request.
        let slow: Vec<TcpStream> = (0..8)
            .map(|_| {
                let mut s = TcpStream::connect(addr).unwrap();
                s.write_all(b"GET /dists/x/Release HTTP/1.1\r\nX-Slow: ")
                    .unwrap();
                s
            })
            .collect();
        for _ in 0..5 {
            let line = exchange(
                addr,
                &[b"GET /dists/x/Release HTTP/1.0\r\n\r\n"],
                Duration::ZERO,
            );
            assert_eq!(line, "HTTP/1.1 200 OK");
        }
        drop(slow);
    }
}
