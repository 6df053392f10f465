//! Programs joined by pipes, like `zfs send ... | zfs receive ...`.

use std::io::Read;
use std::process::{Child, ChildStdout, Stdio};
use std::thread::JoinHandle;

use crate::cmd::{drain, Cmd, Output};
use crate::error::Error;

/// Two or more commands, each one's standard output feeding the next one's
/// standard input through an operating-system pipe: the stream is never held
/// in memory whole, however large it is.
///
/// ```
/// use kld_exec::Cmd;
/// # fn main() -> Result<(), kld_exec::Error> {
/// let out = Cmd::new("printf").arg("b\na\n").pipe(Cmd::new("sort")).run()?;
/// assert_eq!(out.stdout_str(), "a\nb\n");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Pipeline {
    stages: Vec<Cmd>,
}

struct Running {
    child: Child,
    stderr: JoinHandle<Vec<u8>>,
}

impl Pipeline {
    pub(crate) fn new(first: Cmd) -> Self {
        Pipeline {
            stages: vec![first],
        }
    }

    /// Appends one more stage.
    pub fn pipe(mut self, next: Cmd) -> Self {
        self.stages.push(next);
        self
    }

    /// The pipeline as a shell would write it, for messages and dry runs.
    pub fn display(&self) -> String {
        self.stages
            .iter()
            .map(Cmd::display)
            .collect::<Vec<_>>()
            .join(" | ")
    }

    /// Runs every stage at once, waits for all of them and returns what the
    /// last one printed. If any stage fails, the error is the first failing
    /// stage's (the upstream cause, e.g. `zfs send` rather than the
    /// `zfs receive` that then saw a truncated stream).
    pub fn run(&self) -> Result<Output, Error> {
        let mut running: Vec<(usize, Running)> = Vec::new();
        let mut upstream: Option<ChildStdout> = None;
        let mut feeder = None;
        let last = self.stages.len() - 1;
        for (i, stage) in self.stages.iter().enumerate() {
            let stdin = match upstream.take() {
                Some(pipe) => Stdio::from(pipe),
                None => stage.own_stdin(),
            };
            let mut child = match stage.spawn(stdin, Stdio::piped()) {
                Ok(child) => child,
                Err(e) => {
                    // Do not leave the earlier stages running unattended.
                    for (_, mut r) in running {
                        let _ = r.child.kill();
                        let _ = r.child.wait();
                    }
                    return Err(e);
                }
            };
            if i == 0 {
                feeder = stage.feed_stdin(&mut child);
            }
            let stderr = drain(child.stderr.take());
            if i < last {
                upstream = child.stdout.take();
            }
            running.push((i, Running { child, stderr }));
        }

        let mut stdout = Vec::new();
        let (_, tail) = running
            .last_mut()
            .expect("a pipeline has at least one stage");
        let read = match tail.child.stdout.take() {
            Some(mut pipe) => pipe.read_to_end(&mut stdout).map(|_| ()),
            None => Ok(()),
        };

        // A stage killed by SIGPIPE only saw its reader go away: the reader's
        // own failure is the cause worth reporting.
        let mut first_error = None;
        let mut broken_pipe = None;
        let mut final_status = None;
        for (i, r) in running {
            let stage = &self.stages[i];
            let Running { mut child, stderr } = r;
            let waited = child.wait();
            let stderr = stderr.join().unwrap_or_default();
            let outcome = waited.map_err(|e| stage.io(e)).and_then(|status| {
                final_status = Some((status, stderr.clone()));
                stage.step();
                stage.check(status, &stderr)
            });
            match outcome {
                Err(e) if e.signal() == Some(SIGPIPE) => {
                    broken_pipe.get_or_insert(e);
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
                Ok(()) => {}
            }
        }
        let mut first_error = first_error.or(broken_pipe);
        if let Some(handle) = feeder {
            if let Ok(Err(e)) = handle.join() {
                first_error.get_or_insert(self.stages[0].io(e));
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        read.map_err(|e| self.stages[last].io(e))?;
        let (status, stderr) = final_status.expect("the last stage was waited for");
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }
}

/// The number of SIGPIPE on Linux (the same on every architecture kld runs on).
const SIGPIPE: i32 = 13;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_more_than_a_pipe_buffer_through_three_stages() {
        // 64 MiB through two pipes: only works if nothing waits for a stage
        // to finish before reading from it.
        let out = Cmd::new("head")
            .args(["-c", "67108864", "/dev/zero"])
            .pipe(Cmd::new("cat"))
            .pipe(Cmd::new("wc").arg("-c"))
            .run()
            .unwrap();
        assert_eq!(out.stdout_str().trim(), "67108864");
    }

    #[test]
    fn upstream_failure_is_reported_first() {
        let err = Cmd::new("sh")
            .args(["-c", "echo partial; echo send broke >&2; exit 4"])
            .pipe(Cmd::new("sh").args(["-c", "cat >/dev/null; echo receive saw eof >&2; exit 5"]))
            .run()
            .unwrap_err();
        assert_eq!(err.exit_code(), Some(4));
        assert_eq!(err.stderr(), "send broke");
    }

    #[test]
    fn downstream_failure_is_reported_when_upstream_succeeds() {
        let err = Cmd::new("printf")
            .arg("x")
            .pipe(Cmd::new("false"))
            .run()
            .unwrap_err();
        assert!(err.to_string().contains("`false` failed"), "{err}");
    }

    #[test]
    fn a_stage_that_cannot_start_stops_the_others() {
        let err = Cmd::new("sleep")
            .arg("30")
            .pipe(Cmd::new("kld-no-such-program"))
            .run()
            .unwrap_err();
        assert!(matches!(err, Error::Spawn { .. }));
    }

    #[test]
    fn stdin_feeds_the_first_stage() {
        let out = Cmd::new("cat")
            .stdin_bytes("hello")
            .pipe(Cmd::new("tr").args(["a-z", "A-Z"]))
            .run()
            .unwrap();
        assert_eq!(out.stdout_str(), "HELLO");
        assert_eq!(
            Cmd::new("cat")
                .pipe(Cmd::new("tr").args(["a-z", "A-Z"]))
                .display(),
            "cat | tr a-z A-Z"
        );
    }
}
