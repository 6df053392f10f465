//! One program with its arguments, run without a shell.

use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;

use crate::error::{stderr_tail, Error};
use crate::pipeline::Pipeline;
use crate::quote::render;

/// A program and its argument vector, built up and then run.
///
/// Nothing here goes through a shell: every argument reaches the program as
/// one `argv` entry, whatever characters it holds.
#[derive(Debug, Clone)]
pub struct Cmd {
    program: OsString,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    dir: Option<PathBuf>,
    stdin: Option<Vec<u8>>,
}

/// What a program that succeeded printed.
#[derive(Debug, Clone)]
pub struct Output {
    /// How it ended (always success when returned by [`Cmd::run`]).
    pub status: ExitStatus,
    /// Everything it wrote to standard output.
    pub stdout: Vec<u8>,
    /// Everything it wrote to standard error.
    pub stderr: Vec<u8>,
}

impl Output {
    /// Standard output as text (invalid UTF-8 replaced).
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

impl Cmd {
    /// A command that runs `program` (looked up in `PATH` unless it holds a
    /// `/`) with no arguments.
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        Cmd {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            envs: Vec::new(),
            dir: None,
            stdin: None,
        }
    }

    /// Appends one argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Appends several arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets one environment variable for the program (the rest is inherited).
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.envs
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Runs the program in `dir`.
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.dir = Some(dir.as_ref().to_owned());
        self
    }

    /// Feeds `bytes` to the program's standard input (written on a thread of
    /// its own, so a program that prints before it reads cannot dead-lock).
    pub fn stdin_bytes(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(bytes.into());
        self
    }

    /// Connects this program's standard output to `next`'s standard input.
    pub fn pipe(self, next: Cmd) -> Pipeline {
        Pipeline::new(self).pipe(next)
    }

    /// The command line, shell-quoted, for messages and `--dry-run` output.
    pub fn display(&self) -> String {
        let args: Vec<String> = self
            .args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        render(&self.program.to_string_lossy(), &args)
    }

    /// Runs the program to completion, capturing its standard output and
    /// standard error; an exit status other than 0 is an [`Error::Failed`].
    pub fn run(&self) -> Result<Output, Error> {
        let out = self.run_any_status()?;
        self.check(out.status, &out.stderr)?;
        Ok(out)
    }

    /// Runs the program to completion like [`run`](Self::run), but returns
    /// its output whatever its exit status, for programs whose status is
    /// data (`smartctl` reports findings as a bit mask); only failing to
    /// start it or to read it is an error.
    pub fn run_any_status(&self) -> Result<Output, Error> {
        let mut child = self.spawn(self.own_stdin(), Stdio::piped())?;
        let feeder = self.feed_stdin(&mut child);
        let out = child.wait_with_output().map_err(|source| self.io(source))?;
        join_feeder(feeder).map_err(|source| self.io(source))?;
        self.step();
        Ok(Output {
            status: out.status,
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }

    /// Runs the program with its standard output and standard error passed
    /// through to ours as it prints (for long jobs a person watches). The end
    /// of standard error is still kept for the error if the program fails.
    pub fn run_streaming(&self) -> Result<(), Error> {
        let mut child = self.spawn(self.own_stdin(), Stdio::inherit())?;
        let feeder = self.feed_stdin(&mut child);
        let tee = tee_stderr(child.stderr.take());
        let status = child.wait().map_err(|source| self.io(source))?;
        let stderr = tee.join().unwrap_or_default();
        join_feeder(feeder).map_err(|source| self.io(source))?;
        self.step();
        self.check(status, &stderr)
    }

    /// Runs the program to completion, handing its standard output to
    /// `on_stdout` piece by piece as it arrives, on the calling thread (for
    /// progress a program prints while it works). Standard output is not
    /// kept; standard error is, for the error, as with [`run`](Self::run).
    /// If `on_stdout` panics, the program is left to finish on its own.
    pub fn run_reading(&self, mut on_stdout: impl FnMut(&[u8])) -> Result<(), Error> {
        let mut child = self.spawn(self.own_stdin(), Stdio::piped())?;
        let feeder = self.feed_stdin(&mut child);
        let stderr = drain(child.stderr.take());
        let read = match child.stdout.take() {
            Some(mut pipe) => {
                let mut buf = [0u8; 4096];
                loop {
                    match pipe.read(&mut buf) {
                        Ok(0) => break Ok(()),
                        Ok(n) => on_stdout(&buf[..n]),
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => break Err(e),
                    }
                }
            }
            None => Ok(()),
        };
        let status = child.wait().map_err(|source| self.io(source))?;
        let stderr = stderr.join().unwrap_or_default();
        read.map_err(|source| self.io(source))?;
        join_feeder(feeder).map_err(|source| self.io(source))?;
        self.step();
        self.check(status, &stderr)
    }

    /// Starts the program and does not wait for it: it runs in a process
    /// group of its own (a terminal's Ctrl-C or hang-up does not reach it),
    /// with standard input, output and error on `/dev/null`, and outlives
    /// the caller. Returns its process id. For work that must happen later
    /// even if the caller is gone (e.g. undoing an unconfirmed change).
    pub fn spawn_detached(&self) -> Result<u32, Error> {
        use std::os::unix::process::CommandExt;
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        command.envs(self.envs.iter().map(|(k, v)| (k, v)));
        if let Some(dir) = &self.dir {
            command.current_dir(dir);
        }
        let child = command.spawn().map_err(|source| Error::Spawn {
            command: self.display(),
            source,
        })?;
        self.step();
        Ok(child.id())
    }

    /// One step for the fault-injection hook: the program has run (or, if
    /// detached, started), whatever its exit status.
    pub(crate) fn step(&self) {
        kld_fs::fault::step(|| format!("run {}", self.display()));
    }

    /// Starts the program with the given standard input and output; its
    /// standard error is always a pipe, for the caller to drain.
    pub(crate) fn spawn(&self, stdin: Stdio, stdout: Stdio) -> Result<Child, Error> {
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .stdin(stdin)
            .stdout(stdout)
            .stderr(Stdio::piped());
        command.envs(self.envs.iter().map(|(k, v)| (k, v)));
        if let Some(dir) = &self.dir {
            command.current_dir(dir);
        }
        command.spawn().map_err(|source| Error::Spawn {
            command: self.display(),
            source,
        })
    }

    /// The standard input this command asks for on its own.
    pub(crate) fn own_stdin(&self) -> Stdio {
        if self.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        }
    }

    pub(crate) fn feed_stdin(&self, child: &mut Child) -> Option<JoinHandle<std::io::Result<()>>> {
        let bytes = self.stdin.clone()?;
        let mut pipe = child.stdin.take()?;
        Some(std::thread::spawn(move || match pipe.write_all(&bytes) {
            // A program may rightly stop reading early (e.g. `head`).
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            other => other,
        }))
    }

    pub(crate) fn check(&self, status: ExitStatus, stderr: &[u8]) -> Result<(), Error> {
        if status.success() {
            Ok(())
        } else {
            Err(Error::Failed {
                command: self.display(),
                status,
                stderr: stderr_tail(stderr),
            })
        }
    }

    pub(crate) fn io(&self, source: std::io::Error) -> Error {
        Error::Io {
            command: self.display(),
            source,
        }
    }
}

fn join_feeder(feeder: Option<JoinHandle<std::io::Result<()>>>) -> std::io::Result<()> {
    match feeder {
        Some(handle) => handle.join().unwrap_or(Ok(())),
        None => Ok(()),
    }
}

/// Drains a child's standard error on a thread of its own (so it can never
/// fill the pipe and stall the child) and returns all of it.
pub(crate) fn drain(stderr: Option<ChildStderr>) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut pipe) = stderr {
            let _ = pipe.read_to_end(&mut buf);
        }
        buf
    })
}

/// Copies a child's standard error to ours as it arrives, and returns all of
/// it when the child closes it.
fn tee_stderr(stderr: Option<ChildStderr>) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let Some(mut pipe) = stderr else { return kept };
        let mut buf = [0u8; 8192];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            let _ = std::io::stderr().write_all(&buf[..n]);
            kept.extend_from_slice(&buf[..n]);
        }
        kept
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_never_split_or_expanded() {
        let out = Cmd::new("printf")
            .args(["[%s]", "a b", "$HOME", "*"])
            .run()
            .unwrap();
        assert_eq!(out.stdout_str(), "[a b][$HOME][*]");
    }

    #[test]
    fn failure_carries_command_status_and_stderr() {
        let err = Cmd::new("sh")
            .args(["-c", "echo the reason >&2; exit 3"])
            .run()
            .unwrap_err();
        assert_eq!(err.exit_code(), Some(3));
        assert_eq!(err.stderr(), "the reason");
        let msg = err.to_string();
        assert!(
            msg.contains("`sh -c 'echo the reason >&2; exit 3'`"),
            "{msg}"
        );
        assert!(msg.contains("exit status: 3"), "{msg}");
        assert!(msg.ends_with(": the reason"), "{msg}");
    }

    #[test]
    fn missing_program_is_a_spawn_error() {
        let err = Cmd::new("kld-no-such-program").arg("x").run().unwrap_err();
        assert!(matches!(err, Error::Spawn { .. }), "{err:?}");
        assert!(err
            .to_string()
            .starts_with("cannot run `kld-no-such-program x`"));
    }

    #[test]
    fn large_stdin_and_stdout_do_not_deadlock() {
        let input = vec![b'x'; 4 << 20];
        let out = Cmd::new("cat").stdin_bytes(input.clone()).run().unwrap();
        assert_eq!(out.stdout, input);
    }

    #[test]
    fn stdout_arrives_in_pieces_and_stderr_stays_for_the_error() {
        let mut seen = Vec::new();
        Cmd::new("sh")
            .args(["-c", "printf 'a\\r'; sleep 0.05; printf 'b\\r'"])
            .run_reading(|piece| seen.push(piece.to_vec()))
            .unwrap();
        assert_eq!(seen.concat(), b"a\rb\r");
        let err = Cmd::new("sh")
            .args(["-c", "printf out; echo why >&2; exit 4"])
            .run_reading(|_| {})
            .unwrap_err();
        assert_eq!(err.exit_code(), Some(4));
        assert_eq!(err.stderr(), "why");
    }

    #[test]
    fn env_and_dir_reach_the_program() {
        let out = Cmd::new("sh")
            .args(["-c", "printf '%s %s' \"$KLD_X\" \"$(pwd)\""])
            .env("KLD_X", "y")
            .current_dir("/")
            .run()
            .unwrap();
        assert_eq!(out.stdout_str(), "y /");
    }

    #[test]
    fn detached_programs_outlive_the_call_in_their_own_group() {
        let dir = tempfile_dir();
        let flag = dir.join("done");
        // Field 5 of /proc/PID/stat is the process group.
        let script = format!(
            "sleep 0.2; read -r _ _ _ _ pgid _ < /proc/$$/stat; echo $pgid > {}",
            flag.display()
        );
        let pid = Cmd::new("sh")
            .args(["-c", &script])
            .spawn_detached()
            .unwrap();
        for _ in 0..100 {
            if std::fs::read_to_string(&flag).is_ok_and(|s| !s.trim().is_empty()) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let pgid = std::fs::read_to_string(&flag).unwrap();
        assert_eq!(pgid.trim(), pid.to_string(), "a process group of its own");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("kld-exec-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn streaming_keeps_stderr_for_the_error() {
        let err = Cmd::new("sh")
            .args(["-c", "echo out; echo bad >&2; exit 1"])
            .run_streaming()
            .unwrap_err();
        assert_eq!(err.stderr(), "bad");
    }
}
