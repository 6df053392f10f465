//! The signed test mirror the library tests build darksites from (real
//! gpg, real files; the packages are stand-ins, apt never sees them).
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

use kld_darksite::fetch::sha256_hex;
use kld_darksite::publish::{gzip, release_text, Plan};
use kld_darksite::sign::{generate_key, Signer};

pub struct Mirror {
    pub dir: PathBuf,
    pub keyring: PathBuf,
    pub signer: Signer,
    /// The Release `Date` written.
    pub date: std::cell::RefCell<String>,
    /// Extra Release fields written (`Valid-Until: ...\n`).
    pub extra: std::cell::RefCell<String>,
}

/// The mirror's packages after libc6's security update.
pub const UPDATED: [(&str, &str, &str); 6] = [
    (
        "base-files",
        "12",
        "Essential: yes\nPriority: required\nDepends: libc6\n",
    ),
    ("libc6", "2.36-9+deb12u1", "Priority: optional\n"),
    (
        "apt",
        "2.6.1",
        "Priority: important\nDepends: libc6, gpgv | gpgv2\n",
    ),
    ("gpgv", "2.2.40-1", "Priority: optional\n"),
    (
        "openssh-server",
        "1:9.2p1-2",
        "Priority: optional\nPre-Depends: init-system-helpers\nDepends: libc6 (>= 2.36)\n",
    ),
    ("init-system-helpers", "1.65", "Priority: optional\n"),
];

pub fn deb(name: &str, version: &str, extra: &str, mirror: &Path) -> String {
    let file = format!("pool/main/{}/{name}/{name}_{version}_amd64.deb", &name[..1]);
    let data = format!("not really a deb: {name} {version}").into_bytes();
    fs::create_dir_all(mirror.join(&file).parent().unwrap()).unwrap();
    fs::write(mirror.join(&file), &data).unwrap();
    format!(
        "Package: {name}\nVersion: {version}\nArchitecture: amd64\n{extra}Filename: {file}\nSize: {}\nSHA256: {}\n",
        data.len(),
        sha256_hex(&data)
    )
}

impl Mirror {
    pub fn new(dir: &Path) -> Mirror {
        let key = dir.join("upstream-key.asc");
        generate_key(&key, "test archive").unwrap();
        let signer = Signer::open(&key).unwrap();
        let keyring = dir.join("upstream.gpg");
        fs::write(&keyring, signer.public_key(false).unwrap()).unwrap();
        let m = Mirror {
            dir: dir.join("mirror"),
            keyring,
            signer,
            date: std::cell::RefCell::new("Sat, 10 Aug 2024 09:57:52 UTC".into()),
            extra: std::cell::RefCell::new(String::new()),
        };
        m.publish(&[
            (
                "base-files",
                "12",
                "Essential: yes\nPriority: required\nDepends: libc6\n",
            ),
            ("libc6", "2.36-9", "Priority: optional\n"),
            (
                "apt",
                "2.6.1",
                "Priority: important\nDepends: libc6, gpgv | gpgv2\n",
            ),
            ("gpgv", "2.2.40-1", "Priority: optional\n"),
            (
                "openssh-server",
                "1:9.2p1-2",
                "Priority: optional\nPre-Depends: init-system-helpers\nDepends: libc6 (>= 2.36)\n",
            ),
            ("init-system-helpers", "1.65", "Priority: optional\n"),
            ("unrelated", "1", "Priority: optional\n"),
        ]);
        m
    }

    /// Writes dists/t/{InRelease,Packages.gz} for these packages.
    pub fn publish(&self, pkgs: &[(&str, &str, &str)]) {
        self.publish_suite("t", false, pkgs);
    }

    /// Writes dists/SUITE/{InRelease,Packages.gz} (NotAutomatic, like
    /// backports, when asked).
    pub fn publish_suite(&self, suite: &str, not_automatic: bool, pkgs: &[(&str, &str, &str)]) {
        let text: Vec<String> = pkgs
            .iter()
            .map(|(n, v, e)| deb(n, v, e, &self.dir))
            .collect();
        let text = text.join("\n").into_bytes();
        let files = vec![
            ("main/binary-amd64/Packages".to_owned(), text.clone()),
            ("main/binary-amd64/Packages.gz".to_owned(), gzip(&text)),
        ];
        let dists = self.dir.join("dists").join(suite);
        for (p, b) in &files {
            fs::create_dir_all(dists.join(p).parent().unwrap()).unwrap();
            fs::write(dists.join(p), b).unwrap();
        }
        let plan = Plan {
            distribution: suite.into(),
            label: "test".into(),
            date: self.date.borrow().clone(),
            architectures: vec!["amd64".into()],
            entries: Vec::new(),
        };
        let mut release =
            release_text(&plan, &files).replace("Components: \n", "Components: main\n");
        release = release.replace("Date:", &format!("{}Date:", self.extra.borrow()));
        if not_automatic {
            release = release.replace("Date:", "NotAutomatic: yes\nDate:");
        }
        fs::write(
            dists.join("InRelease"),
            self.signer.clearsign(release.as_bytes()).unwrap(),
        )
        .unwrap();
    }

    pub fn url(&self) -> String {
        format!("file://{}", self.dir.display())
    }

    pub fn set(&self, dir: &Path, packages: &str) -> PathBuf {
        let path = dir.join("set.toml");
        fs::write(
            &path,
            format!(
                "name = \"test\"\ndistribution = \"t\"\npackages = [{packages}]\nkeyring = \"{}\"\n",
                self.keyring.display()
            ),
        )
        .unwrap();
        path
    }
}
