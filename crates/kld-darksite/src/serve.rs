//! A small static HTTP/1.1 server for a darksite's current publication,
//! enough for apt, debootstrap and mmdebstrap on a LAN: `GET` and `HEAD`,
//! keep-alive, byte ranges (for resumed downloads), no directory listings,
//! nothing outside the publication (no `..`, no dot-files, symbolic links
//! followed only within it). `current` is looked up on each request, so an
//! update or a rollback takes effect at once.

use std::io::{BufRead, BufReader, Read, Seek, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::verify::publication_root;

/// How many connections are served at once; more get 503.
pub const MAX_CONNECTIONS: usize = 64;

/// A bound server.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    dir: PathBuf,
}

impl Server {
    /// Binds `addr` (e.g. `127.0.0.1:8080`) to serve the darksite in `dir`
    /// (or a publication directory).
    pub fn bind(dir: &Path, addr: &str) -> std::io::Result<Server> {
        Ok(Server {
            listener: TcpListener::bind(addr)?,
            dir: dir.to_owned(),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until the process ends.
    pub fn run(self) -> std::io::Result<()> {
        let active = Arc::new(AtomicUsize::new(0));
        let dir = Arc::new(self.dir);
        for stream in self.listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            if active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
                active.fetch_sub(1, Ordering::SeqCst);
                let _ = respond_status(&mut stream, 503, "Service Unavailable", false);
                continue;
            }
            let (active, dir) = (Arc::clone(&active), Arc::clone(&dir));
            std::thread::spawn(move || {
                let _ = connection(stream, &dir);
                active.fetch_sub(1, Ordering::SeqCst);
            });
        }
        Ok(())
    }
}

fn connection(stream: TcpStream, dir: &Path) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let request = line.trim_end().to_owned();
        if request.is_empty() {
            continue;
        }
        let mut range = None;
        let mut close = request.ends_with("HTTP/1.0");
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 {
                return Ok(());
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((name, value)) = h.split_once(':') {
                let value = value.trim();
                if name.eq_ignore_ascii_case("range") {
                    range = parse_range(value);
                } else if name.eq_ignore_ascii_case("connection")
                    && value.eq_ignore_ascii_case("close")
                {
                    close = true;
                }
            }
        }
        let parts: Vec<&str> = request.split_whitespace().collect();
        let [method, target, _version] = parts[..] else {
            respond_status(&mut out, 400, "Bad Request", true)?;
            return Ok(());
        };
        let head = match method {
            "GET" => false,
            "HEAD" => true,
            _ => {
                respond_status(&mut out, 405, "Method Not Allowed", close)?;
                if close {
                    return Ok(());
                }
                continue;
            }
        };
        match resolve(dir, target) {
            Some(path) => send_file(&mut out, &path, head, range)?,
            None => respond_status(&mut out, 404, "Not Found", close)?,
        }
        out.flush()?;
        if close {
            return Ok(());
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
}
