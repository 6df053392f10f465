//! `zfs send` and `zfs receive`, described as values and turned into
//! commands that [`crate::Zfs::replicate`] pipes together.

use kld_exec::Cmd;

use crate::name::{DatasetName, SnapshotName};

/// What to send.
#[derive(Debug, Clone)]
pub struct Send {
    source: Source,
    raw: bool,
    replicate: bool,
    properties: bool,
}

#[derive(Debug, Clone)]
enum Source {
    Full(SnapshotName),
    Incremental {
        from: String,
        to: SnapshotName,
        intermediate: bool,
    },
    Resume(String),
}

impl Send {
    /// A full stream of one snapshot.
    pub fn full(snap: &SnapshotName) -> Self {
        Send::with(Source::Full(snap.clone()))
    }

    /// An incremental stream from `from` (a snapshot or bookmark of the same
    /// dataset, e.g. `@a` or `#mark`, or a full name) to `to`. With
    /// `intermediate`, every snapshot between them is sent too (`-I`).
    pub fn incremental(from: &str, to: &SnapshotName, intermediate: bool) -> Self {
        Send::with(Source::Incremental {
            from: from.to_owned(),
            to: to.clone(),
            intermediate,
        })
    }

    /// Resumes an interrupted stream from the receiver's
    /// `receive_resume_token`.
    pub fn resume(token: &str) -> Self {
        Send::with(Source::Resume(token.to_owned()))
    }

    fn with(source: Source) -> Self {
        Send {
            source,
            raw: false,
            replicate: false,
            properties: false,
        }
    }

    /// Sends encrypted data as it is on disk, never decrypted (`-w`).
    pub fn raw(mut self) -> Self {
        self.raw = true;
        self
    }

    /// Sends the dataset's whole tree, snapshots and properties (`-R`).
    pub fn replicate(mut self) -> Self {
        self.replicate = true;
        self
    }

    /// Includes the dataset's properties (`-p`).
    pub fn properties(mut self) -> Self {
        self.properties = true;
        self
    }

    /// The `zfs send` command, from the given `zfs` program.
    pub(crate) fn command(&self, zfs: Cmd) -> Cmd {
        let send = zfs.arg("send");
        match &self.source {
            // A resumed stream carries its own flags in the token.
            Source::Resume(token) => send.arg("-t").arg(token),
            Source::Full(snap) => self.flags(send).arg(snap),
            Source::Incremental {
                from,
                to,
                intermediate,
            } => self
                .flags(send)
                .arg(if *intermediate { "-I" } else { "-i" })
                .arg(from)
                .arg(to),
        }
    }

    fn flags(&self, mut cmd: Cmd) -> Cmd {
        for (on, flag) in [
            (self.raw, "-w"),
            (self.replicate, "-R"),
            (self.properties, "-p"),
        ] {
            if on {
                cmd = cmd.arg(flag);
            }
        }
        cmd
    }
}

/// Where and how to receive.
#[derive(Debug, Clone)]
pub struct Receive {
    target: DatasetName,
    resumable: bool,
    force: bool,
    no_mount: bool,
}

impl Receive {
    /// Receive into `target`.
    pub fn into(target: &DatasetName) -> Self {
        Receive {
            target: target.clone(),
            resumable: false,
            force: false,
            no_mount: false,
        }
    }

    /// Keep partial state if the stream is cut, so it can be resumed
    /// (`-s`); the dataset then has a `receive_resume_token`.
    pub fn resumable(mut self) -> Self {
        self.resumable = true;
        self
    }

    /// Roll the target back to its newest snapshot first (`-F`), which
    /// discards changes made on the receiving side.
    pub fn force(mut self) -> Self {
        self.force = true;
        self
    }

    /// Do not mount what is received (`-u`).
    pub fn no_mount(mut self) -> Self {
        self.no_mount = true;
        self
    }

    /// The `zfs receive` command, from the given `zfs` program.
    pub(crate) fn command(&self, zfs: Cmd) -> Cmd {
        let mut cmd = zfs.arg("receive");
        for (on, flag) in [
            (self.resumable, "-s"),
            (self.force, "-F"),
            (self.no_mount, "-u"),
        ] {
            if on {
                cmd = cmd.arg(flag);
            }
        }
        cmd.arg(&self.target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(s: &str) -> SnapshotName {
        SnapshotName::new(s).unwrap()
    }

    #[test]
    fn commands() {
        let zfs = || Cmd::new("zfs");
        assert_eq!(
            Send::full(&snap("p/a@1")).raw().command(zfs()).display(),
            "zfs send -w p/a@1"
        );
        assert_eq!(
            Send::incremental("@1", &snap("p/a@2"), true)
                .command(zfs())
                .display(),
            "zfs send -I @1 p/a@2"
        );
        assert_eq!(
            Send::resume("1-abc").replicate().command(zfs()).display(),
            "zfs send -t 1-abc"
        );
        let target = DatasetName::new("q/b").unwrap();
        assert_eq!(
            Receive::into(&target)
                .resumable()
                .no_mount()
                .command(zfs())
                .display(),
            "zfs receive -s -u q/b"
        );
    }
}
