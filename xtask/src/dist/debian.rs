//! The Debian metadata of the package: control, copyright, changelog,
//! md5sums and the maintainer scripts that enable its systemd units.

use std::path::Path;

use anyhow::{Context, Result};
use kld_exec::Cmd;

use super::deps::Relations;

/// Who answers for the package; `KLD_MAINTAINER` overrides it for builds
/// published elsewhere.
const MAINTAINER: &str = "kld maintainers <maintainers@kld.example.org>";

/// The control file's fields.
pub struct Control<'a> {
    /// `0.1.0-1`.
    pub version: &'a str,
    /// Installed-Size.
    pub installed_size_kib: u64,
    /// Depends, Recommends, Suggests.
    pub relations: &'a Relations,
    /// The binaries, named in the description.
    pub binaries: &'a [String],
}

impl Control<'_> {
    /// The `DEBIAN/control` text.
    pub fn render(&self) -> String {
        let mut text = format!(
            "Package: kld\nVersion: {}\nArchitecture: amd64\nMaintainer: {}\n\
             Installed-Size: {}\n",
            self.version,
            maintainer(),
            self.installed_size_kib
        );
        for (field, list) in [
            ("Depends", &self.relations.depends),
            ("Recommends", &self.relations.recommends),
            ("Suggests", &self.relations.suggests),
        ] {
            if !list.is_empty() {
                text.push_str(&format!("{field}: {}\n", list.join(", ")));
            }
        }
        // It depends on OpenZFS, which Debian ships in contrib.
        text.push_str("Section: contrib/admin\nPriority: optional\n");
        let about = format!(
            "Snapshots before a change and the way back, datasets where directories \
             would go, disk space as ZFS accounts it, boot environments, nftables \
             zones applied atomically with an automatic revert, and signed offline \
             APT mirrors.\n\
             Every listing has a scripted mode (-H) and versioned JSON output, and \
             every change a --dry-run.\n\
             This package holds the commands {}, their manual pages, their bash, \
             zsh and fish completions and their systemd units.",
            self.binaries.join(", ")
        );
        text.push_str("Description: toolkit for ZFS-on-root Debian hosts\n");
        text.push_str(&description(&about));
        text
    }
}

/// An extended description: paragraphs (one a line of `text`) wrapped at
/// 72 columns, each line indented by one space, paragraphs separated by ` .`.
fn description(text: &str) -> String {
    let mut out = String::new();
    for (i, paragraph) in text.lines().enumerate() {
        if i > 0 {
            out.push_str(" .\n");
        }
        let mut line = String::new();
        for word in paragraph.split_whitespace() {
            if !line.is_empty() && line.len() + 1 + word.len() > 72 {
                out.push_str(&format!(" {line}\n"));
                line.clear();
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        out.push_str(&format!(" {line}\n"));
    }
    out
}

fn maintainer() -> String {
    std::env::var("KLD_MAINTAINER").unwrap_or_else(|_| MAINTAINER.to_owned())
}

/// `usr/share/doc/kld/copyright`, machine-readable (DEP-5).
pub fn copyright() -> String {
    format!(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
         Upstream-Name: kld\n\
         Comment: The binaries link, statically, Rust crates from crates.io\n \
         under MIT, Apache-2.0 and compatible licences (see Cargo.lock).\n\
         \n\
         Files: *\n\
         Copyright: 2026 the kld authors\n\
         License: MIT or Apache-2.0\n\
         \n\
         License: MIT\n{MIT}\n\
         License: Apache-2.0\n \
         On Debian systems the full text of the Apache License 2.0 is in\n \
         /usr/share/common-licenses/Apache-2.0.\n"
    )
}

/// The MIT licence, as a DEP-5 license paragraph body.
const MIT: &str = " Permission is hereby granted, free of charge, to any person obtaining a
 copy of this software and associated documentation files (the \"Software\"),
 to deal in the Software without restriction, including without limitation
 the rights to use, copy, modify, merge, publish, distribute, sublicense,
 and/or sell copies of the Software, and to permit persons to whom the
 Software is furnished to do so, subject to the following conditions:
 .
 The above copyright notice and this permission notice shall be included in
 all copies or substantial portions of the Software.
 .
 THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
 IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
 FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
 AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
 LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING
 FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER
 DEALINGS IN THE SOFTWARE.";

/// `changelog.Debian`: one entry for this version, naming the commit, dated
/// with the commit's time (so two builds of one commit are the same).
pub fn changelog(version: &str) -> Result<String> {
    let root = kld_tests::vm::workspace_root();
    let git = |args: &[&str]| {
        Cmd::new("git")
            .arg("-C")
            .arg(&root)
            .args(args)
            .run()
            .map(|o| o.stdout_str().trim().to_owned())
    };
    let commit = match std::env::var("KLD_GIT_COMMIT") {
        Ok(commit) => commit,
        Err(_) => git(&["rev-parse", "--short=12", "HEAD"])
            .context("reading the git commit (set KLD_GIT_COMMIT outside git)")?,
    };
    let date = match git(&["log", "-1", "--format=%aD", "HEAD"]) {
        Ok(date) => date,
        Err(_) => Cmd::new("date")
            .arg("-R")
            .run()?
            .stdout_str()
            .trim()
            .to_owned(),
    };
    Ok(format!(
        "kld ({version}) bookworm; urgency=medium\n\n  \
         * Built from commit {commit}.\n\n -- {}  {date}\n",
        maintainer()
    ))
}

/// `DEBIAN/md5sums` of every file below `root` (DEBIAN/ excluded).
pub fn md5sums(root: &Path) -> Result<String> {
    let files: Vec<String> = super::walk(root)?
        .iter()
        .filter_map(|f| f.strip_prefix(root).ok())
        .filter(|f| !f.starts_with("DEBIAN"))
        .map(|f| f.display().to_string())
        .collect();
    Ok(Cmd::new("md5sum")
        .args(&files)
        .current_dir(root)
        .run()
        .context("computing md5sums")?
        .stdout_str())
}

/// postinst, prerm and postrm for the units (none without units), as
/// debhelper writes them: units with an `[Install]` section (templates
/// aside) are enabled on
/// first installation (an admin's `systemctl disable` is kept on
/// upgrades); timers are also started, services are not (they run at boot:
/// starting one from a package installation would, e.g., load a ruleset
/// mid-upgrade); everything is stopped on removal and forgotten on purge.
pub fn maintainer_scripts(root: &Path, units: &[String]) -> Result<Vec<(&'static str, String)>> {
    let mut enable = Vec::new();
    for unit in units {
        let path = root.join("lib/systemd/system").join(unit);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        // A template (`kwg@.service`) is enabled per instance by the admin
        // (`systemctl enable kwg@wg0`), as debhelper leaves it.
        let template = unit.contains("@.");
        if !template && text.lines().any(|l| l.trim() == "[Install]") {
            enable.push(unit.as_str());
        }
    }
    if enable.is_empty() {
        return Ok(Vec::new());
    }
    let timers: Vec<&str> = enable
        .iter()
        .copied()
        .filter(|u| u.ends_with(".timer"))
        .collect();
    let all = enable.join(" ");
    let mut postinst = format!(
        "#!/bin/sh\nset -e\n\
         if [ \"$1\" = configure ] || [ \"$1\" = abort-upgrade ] || \
         [ \"$1\" = abort-deconfigure ] || [ \"$1\" = abort-remove ]; then\n\
         \tfor unit in {all}; do\n\
         \t\tdeb-systemd-helper unmask \"$unit\" >/dev/null || true\n\
         \t\t# was-enabled is true on a first installation.\n\
         \t\tif deb-systemd-helper --quiet was-enabled \"$unit\"; then\n\
         \t\t\tdeb-systemd-helper enable \"$unit\" >/dev/null || true\n\
         \t\telse\n\
         \t\t\tdeb-systemd-helper update-state \"$unit\" >/dev/null || true\n\
         \t\tfi\n\
         \tdone\n\
         \tif [ -d /run/systemd/system ]; then\n\
         \t\tsystemctl --system daemon-reload >/dev/null || true\n"
    );
    if !timers.is_empty() {
        postinst.push_str(&format!(
            "\t\tdeb-systemd-invoke start {} >/dev/null || true\n",
            timers.join(" ")
        ));
    }
    postinst.push_str("\tfi\nfi\n");
    let prerm = format!(
        "#!/bin/sh\nset -e\n\
         if [ -d /run/systemd/system ] && [ \"$1\" = remove ]; then\n\
         \tdeb-systemd-invoke stop {all} >/dev/null || true\n\
         fi\n"
    );
    let postrm = format!(
        "#!/bin/sh\nset -e\n\
         if [ \"$1\" = remove ] && [ -d /run/systemd/system ]; then\n\
         \tsystemctl --system daemon-reload >/dev/null || true\n\
         fi\n\
         if command -v deb-systemd-helper >/dev/null 2>&1; then\n\
         \tif [ \"$1\" = remove ]; then\n\
         \t\tdeb-systemd-helper mask {all} >/dev/null || true\n\
         \tfi\n\
         \tif [ \"$1\" = purge ]; then\n\
         \t\tdeb-systemd-helper purge {all} >/dev/null || true\n\
         \t\tdeb-systemd-helper unmask {all} >/dev/null || true\n\
         \tfi\n\
         fi\n"
    );
    Ok(vec![
        ("postinst", postinst),
        ("prerm", prerm),
        ("postrm", postrm),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_wrap_within_policy() {
        let text = description(&format!("{}\nshort", "word ".repeat(40)));
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines.iter().all(|l| l.starts_with(' ') && l.len() <= 73),
            "{text}"
        );
        assert_eq!(lines[lines.len() - 2], " .");
        assert_eq!(lines[lines.len() - 1], " short");
    }
}
