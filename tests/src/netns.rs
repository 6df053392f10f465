//! Network namespaces for host-tier tests: made with `ip netns`, joined by
//! veth pairs, entered per thread (`setns` affects only the calling thread
//! and the programs it starts), and always removed (on drop, even when a
//! test fails). TCP helpers bound in count and time carry real traffic
//! between them.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kld_exec::Cmd;
use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};

/// A network namespace that exists while this value does.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

impl Netns {
    /// Makes a namespace named `kld-TAG-PID-N`, with its loopback up.
    pub fn new(tag: &str) -> Result<Netns, kld_exec::Error> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("kld-{tag}-{}-{n}", std::process::id());
        Cmd::new("ip").args(["netns", "add", &name]).run()?;
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n NAME ARGS...`.
    pub fn ip(&self, args: &[&str]) -> Result<(), kld_exec::Error> {
        Cmd::new("ip")
            .args(["-n", &self.name])
            .args(args)
            .run()
            .map(drop)
    }

    /// A command that runs `program` inside the namespace.
    pub fn cmd(&self, program: impl AsRef<std::ffi::OsStr>) -> Cmd {
        Cmd::new("ip")
            .args(["netns", "exec", &self.name])
            .arg(program)
    }

    /// Runs `f` on a thread that has entered the namespace (sockets it
    /// makes and programs it starts are inside).
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|s| {
            s.spawn(|| {
                let file = std::fs::File::open(&path).expect("the namespace's file");
                move_into_link_name_space(
                    std::os::fd::AsFd::as_fd(&file),
                    Some(LinkNameSpaceType::Network),
                )
                .expect("setns into the test namespace");
                f()
            })
            .join()
            .expect("the namespace thread panicked")
        })
    }

    /// Adds an address (`10.0.0.1/24`, `2001:db8::1/64`) to an interface,
    /// IPv6 ones without duplicate address detection (usable at once).
    pub fn addr(&self, dev: &str, cidr: &str) -> Result<(), kld_exec::Error> {
        if cidr.contains(':') {
            self.ip(&["addr", "add", cidr, "dev", dev, "nodad"])
        } else {
            self.ip(&["addr", "add", cidr, "dev", dev])
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Cmd::new("ip").args(["netns", "del", &self.name]).run();
    }
}

/// Joins `a`'s interface `a_if` and `b`'s `b_if` with a veth pair, both up.
pub fn veth(a: &Netns, a_if: &str, b: &Netns, b_if: &str) -> Result<(), kld_exec::Error> {
    Cmd::new("ip")
        .args([
            "link",
            "add",
            a_if,
            "netns",
            a.name(),
            "type",
            "veth",
            "peer",
            "name",
            b_if,
        ])
        .args(["netns", b.name()])
        .run()?;
    a.ip(&["link", "set", a_if, "up"])?;
    b.ip(&["link", "set", b_if, "up"])
}

/// A TCP server in a namespace that answers each connection with the peer
/// address it saw, until dropped (or two minutes pass).
#[derive(Debug)]
pub struct Server {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Listens on `addr` (e.g. `[::]:80`, which takes IPv4 too) inside `ns`.
    pub fn start(ns: &Netns, addr: &str) -> std::io::Result<Server> {
        let addr: SocketAddr = addr.parse().expect("a socket address");
        let listener = ns.run(|| TcpListener::bind(addr))?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let until = Instant::now() + Duration::from_secs(120);
            while !flag.load(Ordering::Relaxed) && Instant::now() < until {
                match listener.accept() {
                    Ok((mut conn, peer)) => {
                        let _ = conn.write_all(peer.ip().to_canonical().to_string().as_bytes());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Ok(Server {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Connects from `ns` to `addr` (waiting at most `timeout`) and returns the
/// peer address the [`Server`] saw, or the error.
pub fn connect(ns: &Netns, addr: &str, timeout: Duration) -> std::io::Result<String> {
    let addr: SocketAddr = addr.parse().expect("a socket address");
    ns.run(|| {
        let mut s = TcpStream::connect_timeout(&addr, timeout)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut seen = String::new();
        s.read_to_string(&mut seen)?;
        Ok(seen)
    })
}

/// Whether a connection from `ns` to `addr` gets through within a second.
pub fn reaches(ns: &Netns, addr: &str) -> bool {
    connect(ns, addr, Duration::from_secs(1)).is_ok()
}
