//! Choosing the kernel modules the VM carries: a parser for `modules.dep`
//! and the dependency closure of the modules asked for.

use std::collections::{BTreeMap, BTreeSet};

/// `modules.dep`: each module's path (relative to `/lib/modules/<kver>`) and
/// the paths of the modules it needs.
#[derive(Debug, Default)]
pub struct ModuleDeps {
    deps: BTreeMap<String, Vec<String>>,
}

impl ModuleDeps {
    /// Parses the text of a `modules.dep` file. Malformed lines are errors,
    /// with their line number.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut deps = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let (module, needs) = line
                .split_once(':')
                .ok_or_else(|| format!("modules.dep line {}: no ':' in {line:?}", n + 1))?;
            if module.is_empty() || module.contains(char::is_whitespace) {
                return Err(format!(
                    "modules.dep line {}: bad module path {module:?}",
                    n + 1
                ));
            }
            deps.insert(
                module.to_owned(),
                needs.split_whitespace().map(str::to_owned).collect(),
            );
        }
        Ok(ModuleDeps { deps })
    }

    /// The module whose file is `<name>.ko` (any compression suffix), with
    /// `-` and `_` treated alike as the kernel does.
    pub fn find(&self, name: &str) -> Option<&str> {
        let want = name.replace('-', "_");
        self.deps.keys().map(String::as_str).find(|path| {
            let file = path.rsplit('/').next().unwrap_or(path);
            let stem = file.split(".ko").next().unwrap_or(file);
            stem.replace('-', "_") == want
        })
    }

    /// Every module whose path starts with `dir`.
    pub fn under<'a>(&'a self, dir: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.deps
            .keys()
            .map(String::as_str)
            .filter(move |p| p.starts_with(dir))
    }

    /// The given modules and everything they need, transitively.
    pub fn closure<'a>(&self, roots: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<String> = roots.into_iter().map(str::to_owned).collect();
        while let Some(module) = todo.pop() {
            if !seen.insert(module.clone()) {
                continue;
            }
            if let Some(needs) = self.deps.get(&module) {
                todo.extend(needs.iter().filter(|d| !seen.contains(*d)).cloned());
            }
        }
        seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SAMPLE: &str = "\
updates/dkms/zfs.ko: updates/dkms/spl.ko
updates/dkms/spl.ko:
kernel/net/netfilter/nft_ct.ko: kernel/net/netfilter/nf_tables.ko kernel/net/netfilter/nf_conntrack.ko kernel/lib/libcrc32c.ko
kernel/net/netfilter/nf_tables.ko: kernel/net/netfilter/nfnetlink.ko
kernel/net/netfilter/nfnetlink.ko:
kernel/net/netfilter/nf_conntrack.ko: kernel/lib/libcrc32c.ko
kernel/lib/libcrc32c.ko:
kernel/drivers/net/wireguard/wireguard.ko: kernel/net/ipv4/udp_tunnel.ko
kernel/net/ipv4/udp_tunnel.ko:
";

    #[test]
    fn closure_follows_dependencies() {
        let deps = ModuleDeps::parse(SAMPLE).unwrap();
        let zfs = deps.find("zfs").unwrap();
        assert_eq!(
            deps.closure([zfs]).into_iter().collect::<Vec<_>>(),
            ["updates/dkms/spl.ko", "updates/dkms/zfs.ko"]
        );
        let nf: BTreeSet<_> = deps.closure(deps.under("kernel/net/netfilter/"));
        assert!(nf.contains("kernel/lib/libcrc32c.ko"));
        assert_eq!(nf.len(), 5);
        assert_eq!(
            deps.find("udp-tunnel"),
            Some("kernel/net/ipv4/udp_tunnel.ko")
        );
        assert_eq!(deps.find("nope"), None);
    }

    #[test]
    fn bad_lines_are_reported_with_their_number() {
        let err = ModuleDeps::parse("a.ko:\nbroken line\n").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn the_installed_kernels_modules_dep_parses() {
        for entry in std::fs::read_dir("/lib/modules")
            .into_iter()
            .flatten()
            .flatten()
        {
            let dep = entry.path().join("modules.dep");
            if let Ok(text) = std::fs::read_to_string(&dep) {
                let deps = ModuleDeps::parse(&text).unwrap();
                assert!(deps.under("kernel/").next().is_some(), "{}", dep.display());
            }
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics(text in "\\PC{0,200}") {
            let _ = ModuleDeps::parse(&text);
        }

        #[test]
        fn closure_contains_its_roots_and_only_known_or_root_modules(
            edges in proptest::collection::vec(("[a-e]", "[a-e]"), 0..12)
        ) {
            let mut text = String::new();
            for name in ["a", "b", "c", "d", "e"] {
                let needs: Vec<_> = edges.iter().filter(|(f, _)| f == name).map(|(_, t)| format!("{t}.ko")).collect();
                text.push_str(&format!("{name}.ko: {}\n", needs.join(" ")));
            }
            let deps = ModuleDeps::parse(&text).unwrap();
            let closure = deps.closure(["a.ko"]);
            prop_assert!(closure.contains("a.ko"));
            for (from, to) in &edges {
                let (from, to) = (format!("{from}.ko"), format!("{to}.ko"));
                if closure.contains(&from) {
                    prop_assert!(closure.contains(&to), "{} needs {}", from, to);
                }
            }
        }
    }
}
