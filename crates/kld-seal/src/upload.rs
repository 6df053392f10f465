//! Upload over SSH with the host key checked: `scp` and `ssh` from OpenSSH
//! with `StrictHostKeyChecking=yes` and `BatchMode=yes` (a host missing from
//! known_hosts is an error, never a prompt), to a temporary name; the remote
//! copy's `sha256sum` compared with the local one; then renamed (never over
//! an existing file).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use kld_exec::Cmd;

use crate::error::{Error, Result};
use crate::hash::ChecksumLine;

/// `USER@HOST:DIR`: where uploads go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The remote user.
    pub user: String,
    /// The host name or address (an IPv6 address without brackets).
    pub host: String,
    /// The remote directory.
    pub dir: String,
}

fn plain(s: &str, extra: &[u8]) -> bool {
    !s.is_empty()
        && !s.starts_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b) || extra.contains(&b))
}

impl FromStr for Destination {
    type Err = Error;

    /// Parses `USER@HOST:DIR` (`USER@[V6ADDR]:DIR` for IPv6). The directory
    /// may hold only letters, digits and `/._-~` (it reaches a remote shell).
    fn from_str(s: &str) -> Result<Destination> {
        let bad = || Error::Destination(s.to_owned());
        let (user, rest) = s.split_once('@').ok_or_else(bad)?;
        let (host, dir) = if let Some(r) = rest.strip_prefix('[') {
            let (h, d) = r.split_once("]:").ok_or_else(bad)?;
            if !plain(h, b":") {
                return Err(bad());
            }
            (h, d)
        } else {
            rest.split_once(':').ok_or_else(bad)?
        };
        if !plain(user, b"") || !plain(host, b":") || !plain(dir, b"/~") || dir.contains("..") {
            return Err(bad());
        }
        Ok(Destination {
            user: user.into(),
            host: host.into(),
            dir: dir.into(),
        })
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}@[{}]:{}", self.user, self.host, self.dir)
        } else {
            write!(f, "{}@{}:{}", self.user, self.host, self.dir)
        }
    }
}

/// An upload's settings.
#[derive(Debug, Clone)]
pub struct Upload {
    dest: Destination,
    known_hosts: Option<PathBuf>,
    identity: Option<PathBuf>,
    port: Option<u16>,
}

impl Upload {
    /// Uploads to `dest`, checking the host key against ssh's usual
    /// known_hosts files.
    pub fn new(dest: Destination) -> Upload {
        Upload {
            dest,
            known_hosts: None,
            identity: None,
            port: None,
        }
    }

    /// Checks the host key against this known_hosts file only.
    pub fn known_hosts(mut self, file: impl Into<PathBuf>) -> Self {
        self.known_hosts = Some(file.into());
        self
    }

    /// Authenticates with this private key.
    pub fn identity(mut self, file: impl Into<PathBuf>) -> Self {
        self.identity = Some(file.into());
        self
    }

    /// Connects to this port.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    fn options(&self, port_flag: &str) -> Vec<String> {
        let mut o: Vec<String> = ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"]
            .map(String::from)
            .into();
        if let Some(k) = &self.known_hosts {
            o.push("-o".into());
            o.push(format!("UserKnownHostsFile={}", k.display()));
            o.push("-o".into());
            o.push("GlobalKnownHostsFile=/dev/null".into());
        }
        if let Some(i) = &self.identity {
            o.extend([
                "-o".into(),
                "IdentitiesOnly=yes".into(),
                "-i".into(),
                i.display().to_string(),
            ]);
        }
        if let Some(p) = self.port {
            o.extend([port_flag.into(), p.to_string()]);
        }
        o
    }

    fn ssh(&self, command: &str) -> Result<String> {
        let out = Cmd::new("ssh")
            .args(self.options("-p"))
            .arg(format!("{}@{}", self.dest.user, self.dest.host))
            .arg("--")
            .arg(command)
            .run()?;
        Ok(out.stdout_str())
    }

    /// The remote path of a file name.
    pub fn remote_path(&self, name: &str) -> String {
        format!("{}/{name}", self.dest.dir.trim_end_matches('/'))
    }

    /// Uploads `file`, whose SHA-256 is `sha256`; returns its remote path.
    /// The copy is made under a temporary name, verified, then renamed; a
    /// copy that fails is removed.
    pub fn send(&self, file: &Path, sha256: &str) -> Result<String> {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .filter(|n| plain(n, b""))
            .ok_or_else(|| Error::Name(file.display().to_string()))?;
        let final_path = self.remote_path(&name);
        let tmp = self.remote_path(&format!(".{name}.partial-{}", std::process::id()));
        let host = if self.dest.host.contains(':') {
            format!("[{}]", self.dest.host)
        } else {
            self.dest.host.clone()
        };
        let result = (|| {
            // Not `-q`: it would hide ssh's "Host key verification failed".
            Cmd::new("scp")
                .args(self.options("-P"))
                .arg(file)
                .arg(format!("{}@{host}:{tmp}", self.dest.user))
                .run()?;
            let out = self.ssh(&format!("sha256sum -- {tmp}"))?;
            let got = ChecksumLine::parse(out.lines().next().unwrap_or(""))?.sha256;
            if got != sha256 {
                return Err(Error::RemoteChecksum {
                    remote: final_path.clone(),
                    want: sha256.to_owned(),
                    got,
                });
            }
            // `ln` refuses an existing name; then the temporary name goes.
            self.ssh(&format!("ln -- {tmp} {final_path} && rm -f -- {tmp}"))?;
            Ok(final_path.clone())
        })();
        if result.is_err() {
            let _ = self.ssh(&format!("rm -f -- {tmp}"));
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn destinations() {
        let d: Destination = "root@10.0.0.2:/srv/images".parse().unwrap();
        assert_eq!(
            (d.user.as_str(), d.host.as_str(), d.dir.as_str()),
            ("root", "10.0.0.2", "/srv/images")
        );
        let d6: Destination = "u@[fd00::2]:img".parse().unwrap();
        assert_eq!(d6.host, "fd00::2");
        for bad in [
            "host:/x",
            "u@host",
            "u@h:/a b",
            "u@h:/a;rm",
            "-o@h:/x",
            "u@-oProxy:/x",
            "u@h:../x",
        ] {
            assert!(bad.parse::<Destination>().is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC*") {
            let _ = s.parse::<Destination>();
        }

        #[test]
        fn round_trip(user in "[a-z][a-z0-9]{0,8}", host in "[a-z][a-z0-9.]{0,12}", dir in "/[a-z0-9/_]{0,20}") {
            let d = Destination { user, host, dir };
            prop_assert_eq!(d.to_string().parse::<Destination>().unwrap(), d);
        }
    }
}
