//! The enrolment server: one thread waits on every connection at once
//! (`poll`), so a slow client costs a socket and a small buffer, never a
//! thread; complete requests go to one worker that answers them in turn
//! (the hub's lock orders them anyway).
//!
//! Bounds, all in [`Limits`]:
//!
//! - at most `max_connections` connections are open; when a new one comes
//!   at the cap, the oldest is closed to make room, so a flood of idle or
//!   slow connections cannot keep a real join out: a real spoke sends its
//!   whole request at once and is answered long before it is the oldest;
//! - a request must arrive whole within `deadline` of the connection
//!   (one deadline for the exchange, not one per read: a byte every few
//!   seconds does not keep a connection open);
//! - a request is at most `max_request` bytes;
//! - an error from `accept` (out of file descriptors, out of memory, a
//!   connection reset before it was taken) never ends the server: it
//!   closes the oldest connection, waits a moment, and goes on.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::sync::mpsc::{sync_channel, TrySendError};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};

use crate::enrol::{JoinAnswer, MAX_MESSAGE};

/// How much the server lets clients take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once (the oldest is closed when a new one comes
    /// at the cap).
    pub max_connections: usize,
    /// The time a client has, from its connection, to send its request.
    pub deadline: Duration,
    /// The most bytes a request may have.
    pub max_request: usize,
    /// Complete requests waiting for the worker; more are told to retry.
    pub queue: usize,
}

/// File descriptors kept back from connections (state files, the lock,
/// the journal, the device's socket, the log).
pub const RESERVED_FDS: u64 = 64;

impl Limits {
    /// Limits that fit this process's file descriptor limit (`RLIMIT_NOFILE`
    /// less [`RESERVED_FDS`], at most 4096 connections).
    pub fn for_this_process() -> Limits {
        let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .unwrap_or(4096 + RESERVED_FDS);
        Limits {
            max_connections: soft.saturating_sub(RESERVED_FDS).clamp(8, 4096) as usize,
            ..Limits::default()
        }
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 512,
            deadline: Duration::from_secs(10),
            max_request: MAX_MESSAGE as usize,
            queue: 64,
        }
    }
}

/// Raises this process's soft file descriptor limit to its hard limit
/// (what a server that holds many connections should do first); returns
/// the soft limit now in force.
pub fn raise_fd_limit() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        let _ = setrlimit(Resource::Nofile, limit);
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    buf: Vec<u8>,
    since: Instant,
}

/// Connections the server closed without an answer, counted for the log.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Dropped {
    timed_out: u64,
    evicted: u64,
    oversized: u64,
    accept_errors: u64,
}

impl Dropped {
    fn any(&self) -> bool {
        *self != Dropped::default()
    }
}

/// What the event loop hands the worker: a connection and its request.
type Job = (TcpStream, SocketAddr, Vec<u8>);

fn refuse(stream: &mut TcpStream, reason: &str) {
    let answer = JoinAnswer::Refused {
        reason: reason.to_owned(),
    };
    let mut text = serde_json::to_vec(&answer).expect("answers serialise");
    text.push(b'\n');
    // Non-blocking: a short answer fits the socket's buffer; a client that
    // does not read it loses it.
    let _ = stream.write_all(&text);
}

fn is_resource_error(e: &std::io::Error) -> bool {
    let code = e.raw_os_error();
    [
        rustix::io::Errno::MFILE,
        rustix::io::Errno::NFILE,
        rustix::io::Errno::NOBUFS,
        rustix::io::Errno::NOMEM,
    ]
    .iter()
    .any(|errno| code == Some(errno.raw_os_error()))
}

/// Serves `listener` with `limits`: complete requests are answered by
/// `answer` (on one worker thread) and each outcome is given to `log`,
/// with summaries of the connections closed unanswered. Returns only if
/// the listener cannot be made non-blocking or `poll` itself fails.
pub fn serve(
    listener: TcpListener,
    limits: Limits,
    answer: &(dyn Fn(&[u8]) -> (JoinAnswer, String) + Sync),
    log: &(dyn Fn(&str) + Sync),
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let (tx, rx) = sync_channel::<Job>(limits.queue.max(1));
    std::thread::scope(|s| {
        s.spawn(move || {
            for (mut stream, peer, line) in rx {
                let (reply, outcome) = answer(&line);
                let mut text = serde_json::to_vec(&reply).expect("answers serialise");
                text.push(b'\n');
                let sent = stream
                    .set_nonblocking(false)
                    .and_then(|()| stream.set_write_timeout(Some(Duration::from_secs(2))))
                    .and_then(|()| stream.write_all(&text));
                match sent {
                    Ok(()) => log(&format!("{peer}: {outcome}")),
                    Err(e) => log(&format!("{peer}: {outcome} (the answer was lost: {e})")),
                }
            }
        });
        event_loop(&listener, limits, &tx, log)
    })
}

fn event_loop(
    listener: &TcpListener,
    limits: Limits,
    tx: &std::sync::mpsc::SyncSender<Job>,
    log: &(dyn Fn(&str) + Sync),
) -> std::io::Result<()> {
    let mut max = limits.max_connections.max(1);
    let mut conns: VecDeque<Conn> = VecDeque::new();
    let mut dropped = Dropped::default();
    let mut logged = Dropped::default();
    let mut last_summary = Instant::now();
    let mut backoff_until: Option<Instant> = None;
    let mut chunk = vec![0u8; limits.max_request + 1];
    loop {
        let now = Instant::now();
        // Summaries, at most every 10 s, only when something changed.
        if dropped != logged && now.duration_since(last_summary) >= Duration::from_secs(10) {
            log(&format!(
                "closed unanswered: {} timed out, {} oldest closed at the cap of {max}, \
                 {} too large; {} accept errors ({} connections open)",
                dropped.timed_out - logged.timed_out,
                dropped.evicted - logged.evicted,
                dropped.oversized - logged.oversized,
                dropped.accept_errors - logged.accept_errors,
                conns.len()
            ));
            logged = dropped;
            last_summary = now;
        }
        // Close what ran out of time (the oldest are at the front).
        while conns
            .front()
            .is_some_and(|c| now.duration_since(c.since) >= limits.deadline)
        {
            conns.pop_front();
            dropped.timed_out += 1;
        }
        if backoff_until.is_some_and(|t| now >= t) {
            backoff_until = None;
        }
        let listening = backoff_until.is_none();
        let mut wake = conns
            .front()
            .map_or(Duration::from_secs(1), |c| {
                limits.deadline.saturating_sub(now.duration_since(c.since))
            })
            .min(Duration::from_secs(1));
        if let Some(t) = backoff_until {
            wake = wake.min(t.saturating_duration_since(now));
        }
        let ready: Vec<bool> = {
            let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(conns.len() + 1);
            if listening {
                fds.push(PollFd::new(listener, PollFlags::IN));
            }
            for c in &conns {
                fds.push(PollFd::from_borrowed_fd(c.stream.as_fd(), PollFlags::IN));
            }
            let timeout = rustix::event::Timespec {
                tv_sec: wake.as_secs() as i64,
                tv_nsec: i64::from(wake.subsec_nanos()),
            };
            match rustix::event::poll(&mut fds, Some(&timeout)) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                // Out of memory for the poll set: shed the oldest half.
                Err(rustix::io::Errno::NOMEM) | Err(rustix::io::Errno::INVAL) => {
                    let half = conns.len() / 2;
                    conns.drain(..half);
                    dropped.evicted += half as u64;
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
            fds.iter().map(|f| !f.revents().is_empty()).collect()
        };
        let (listener_ready, conn_ready) = if listening {
            (ready[0], &ready[1..])
        } else {
            (false, &ready[..])
        };

        // Read what came; hand whole requests to the worker.
        let mut done = vec![false; conns.len()];
        for (i, c) in conns.iter_mut().enumerate() {
            if !conn_ready[i] {
                continue;
            }
            let room = limits.max_request + 1 - c.buf.len().min(limits.max_request + 1);
            let (eof, failed) = match c.stream.read(&mut chunk[..room.max(1)]) {
                Ok(0) => (true, false),
                Ok(n) => {
                    c.buf.extend_from_slice(&chunk[..n]);
                    (false, false)
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => (false, false),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => (false, false),
                Err(_) => (false, true),
            };
            if failed {
                done[i] = true;
                continue;
            }
            let end = c.buf.iter().position(|&b| b == b'\n');
            if end.is_none() && c.buf.len() > limits.max_request {
                refuse(&mut c.stream, "the request is too large");
                dropped.oversized += 1;
                done[i] = true;
                continue;
            }
            if end.is_some() || (eof && !c.buf.is_empty()) {
                done[i] = true;
                let len = end.unwrap_or(c.buf.len());
                if len > limits.max_request {
                    refuse(&mut c.stream, "the request is too large");
                    dropped.oversized += 1;
                    continue;
                }
                let line = c.buf[..len].to_vec();
                let Ok(stream) = c.stream.try_clone() else {
                    continue;
                };
                match tx.try_send((stream, c.peer, line)) {
                    Ok(()) => {}
                    Err(TrySendError::Full((mut stream, peer, _))) => {
                        refuse(&mut stream, "the hub is busy: try again in a moment");
                        log(&format!("{peer}: refused: too many requests waiting"));
                    }
                    Err(TrySendError::Disconnected(_)) => {
                        return Err(std::io::Error::other("the enrolment worker stopped"));
                    }
                }
            } else if eof {
                done[i] = true; // closed before sending anything
            }
        }
        let mut i = 0;
        conns.retain(|_| {
            let keep = !done[i];
            i += 1;
            keep
        });

        // Take new connections.
        if listener_ready {
            for _ in 0..64 {
                match listener.accept() {
                    Ok((stream, peer)) => {
                        if stream.set_nonblocking(true).is_err() {
                            continue;
                        }
                        if conns.len() >= max {
                            conns.pop_front();
                            dropped.evicted += 1;
                        }
                        conns.push_back(Conn {
                            stream,
                            peer,
                            buf: Vec::new(),
                            since: Instant::now(),
                        });
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::Interrupted
                                | std::io::ErrorKind::ConnectionAborted
                                | std::io::ErrorKind::ConnectionReset
                        ) =>
                    {
                        continue
                    }
                    Err(e) => {
                        dropped.accept_errors += 1;
                        if dropped.accept_errors - logged.accept_errors == 1 {
                            log(&format!("cannot take a connection: {e} (backing off)"));
                        }
                        if is_resource_error(&e) {
                            // The cap was more than the process can hold:
                            // lower it so the worker keeps descriptors for
                            // the state files, and make room now.
                            let fit = conns.len().saturating_sub(RESERVED_FDS as usize).max(1);
                            if fit < max {
                                max = fit;
                                log(&format!(
                                    "out of file descriptors: at most {max} connections from now on"
                                ));
                            }
                            while conns.len() >= max && conns.pop_front().is_some() {
                                dropped.evicted += 1;
                            }
                        }
                        backoff_until = Some(Instant::now() + Duration::from_millis(50));
                        break;
                    }
                }
            }
        }
        if dropped.any() && conns.is_empty() && dropped != logged {
            // Quiet again: say what happened now rather than in 10 s.
            last_summary = Instant::now() - Duration::from_secs(10);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;

    /// A server on 127.0.0.1 answering every request with a refusal that
    /// quotes its length, on a thread left running.
    fn start(limits: Limits) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let answer = |line: &[u8]| {
                let reason = format!("got {} bytes", line.len());
                (JoinAnswer::Refused { reason }, "answered".to_owned())
            };
            let _ = serve(listener, limits, &answer, &|_| {});
        });
        addr
    }

    fn answer(stream: &TcpStream) -> String {
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut line = String::new();
        let _ = std::io::BufReader::new(stream).read_line(&mut line);
        line
    }

    /// Whether the server closed `stream` (reads end) within 20 s.
    fn closed(stream: &mut TcpStream) -> bool {
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut buf = [0u8; 64];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return false,
                Err(_) => return true,
            }
        }
    }

    #[test]
    fn a_request_too_large_is_refused() {
        let addr = start(Limits::default());
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(&vec![b'x'; MAX_MESSAGE as usize + 10]).unwrap();
        assert!(answer(&s).contains("too large"));
        let mut ok = TcpStream::connect(addr).unwrap();
        ok.write_all(b"{}\n").unwrap();
        assert!(answer(&ok).contains("got 2 bytes"));
    }

    #[test]
    fn the_deadline_is_for_the_whole_request_not_each_read() {
        let addr = start(Limits {
            deadline: Duration::from_millis(600),
            ..Limits::default()
        });
        let mut slow = TcpStream::connect(addr).unwrap();
        // A byte every 100 ms never reaches a newline: closed unanswered,
        // though no single read waited long.
        let mut sent = 0;
        while slow.write_all(b"{").is_ok() && sent < 200 {
            sent += 1;
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(sent < 200, "still open after 20 s of trickling");
        assert!(closed(&mut slow));
    }

    #[test]
    fn at_the_cap_the_oldest_connection_makes_room() {
        let addr = start(Limits {
            max_connections: 4,
            ..Limits::default()
        });
        let mut idle: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(addr).unwrap()).collect();
        // Let the server take them (in order).
        for s in &mut idle {
            s.write_all(b"{").unwrap();
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut real = TcpStream::connect(addr).unwrap();
        real.write_all(b"{\"a\":1}\n").unwrap();
        assert!(answer(&real).contains("got 7 bytes"));
        assert!(closed(&mut idle[0]), "the oldest was closed");
    }
}
