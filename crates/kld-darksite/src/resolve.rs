//! The dependency closure of a package set, computed the way apt chooses
//! packages for `apt-get install --no-install-recommends` on an empty system:
//! candidates are the highest versions; Pre-Depends and Depends are followed
//! depth first; an or-group already satisfied by a chosen package costs
//! nothing, otherwise its first satisfiable alternative is taken (a real
//! package before a virtual one; among providers the most important
//! Priority, then the name); Provides (versioned ones too) and Multi-Arch
//! (`:any`, `foreign`, `allowed`) decide what satisfies what. Whatever
//! cannot be satisfied is reported with the reason, never skipped.

use std::collections::HashMap;
use std::fmt;

use serde::Serialize;

use crate::index::{MultiArch, Package, PackagesIndex};
use crate::relation::{self, Alternatives, ArchQual, Relation};
use crate::set::{Base, PackageSet};
use crate::version::Version;

/// One `Packages` index and where it came from.
#[derive(Debug, Clone)]
pub struct Source {
    /// The suite (`bookworm`, `bookworm-updates`, or `local`).
    pub suite: String,
    /// The component (`main`, ...).
    pub component: String,
    /// The architecture of the index.
    pub arch: String,
    /// The suite is `NotAutomatic` (backports): its versions are candidates
    /// only when no other suite has the package.
    pub not_automatic: bool,
    /// The base URL files of this index are fetched from (`Filename` is
    /// relative to it).
    pub base_url: String,
    /// The index.
    pub index: PackagesIndex,
    /// For local `.deb` files: the file of each package of the index, in
    /// order (empty for a mirror's index).
    pub local_files: Vec<std::path::PathBuf>,
}

/// Identifies a package of a [`Universe`]: (source, position in its index).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PackageId {
    /// Index of the source.
    pub source: u32,
    /// Position in the source's index.
    pub index: u32,
}

/// Every package the set's suites, components and architectures hold.
#[derive(Debug)]
pub struct Universe {
    sources: Vec<Source>,
    native: String,
    archs: Vec<String>,
    by_name: HashMap<String, Vec<PackageId>>,
    providers: HashMap<String, Vec<(PackageId, Option<Version>)>>,
    candidates: HashMap<PackageId, ()>,
}

impl Universe {
    /// Builds the universe from indices; `architectures[0]` is native.
    /// Sources earlier in the list win among equal versions.
    pub fn new(sources: Vec<Source>, architectures: &[String]) -> Universe {
        let mut by_name: HashMap<String, Vec<PackageId>> = HashMap::new();
        let mut providers: HashMap<String, Vec<(PackageId, Option<Version>)>> = HashMap::new();
        for (s, src) in sources.iter().enumerate() {
            for (i, p) in src.index.packages.iter().enumerate() {
                let id = PackageId {
                    source: s as u32,
                    index: i as u32,
                };
                by_name.entry(p.name.clone()).or_default().push(id);
            }
        }
        let mut u = Universe {
            sources,
            native: architectures[0].clone(),
            archs: architectures.to_vec(),
            by_name,
            providers: HashMap::new(),
            candidates: HashMap::new(),
        };
        // The candidate of each (name, architecture): the highest version,
        // NotAutomatic suites only when nothing else has it.
        let mut best: HashMap<(&str, &str), PackageId> = HashMap::new();
        for ids in u.by_name.values() {
            for &id in ids {
                let p = u.pkg(id);
                if p.arch != "all" && !u.archs.contains(&p.arch) {
                    continue;
                }
                let key = (p.name.as_str(), p.arch.as_str());
                let better = match best.get(&key) {
                    None => true,
                    Some(&old) => {
                        let (na_new, na_old) = (
                            u.sources[id.source as usize].not_automatic,
                            u.sources[old.source as usize].not_automatic,
                        );
                        (na_old && !na_new) || (na_old == na_new && p.version > u.pkg(old).version)
                    }
                };
                if better {
                    best.insert(key, id);
                }
            }
        }
        let candidates: HashMap<PackageId, ()> = best.into_values().map(|id| (id, ())).collect();
        for &id in candidates.keys() {
            let Some(text) = &u.pkg(id).provides else {
                continue;
            };
            // An unparsable Provides of one package makes it provide
            // nothing rather than making the whole archive unusable.
            let Ok(groups) = relation::parse_field(text) else {
                continue;
            };
            for g in groups {
                for r in g.0 {
                    let v = r.constraint.map(|(_, v)| v);
                    providers.entry(r.name).or_default().push((id, v));
                }
            }
        }
        for list in providers.values_mut() {
            list.sort_by_key(|(id, _)| *id);
        }
        u.providers = providers;
        u.candidates = candidates;
        u
    }

    /// The package `id` stands for.
    pub fn pkg(&self, id: PackageId) -> &Package {
        &self.sources[id.source as usize].index.packages[id.index as usize]
    }

    /// The source `id` comes from.
    pub fn source(&self, id: PackageId) -> &Source {
        &self.sources[id.source as usize]
    }

    /// The sources.
    pub fn sources(&self) -> &[Source] {
        &self.sources
    }

    /// The number of packages in all indices.
    pub fn len(&self) -> usize {
        self.sources.iter().map(|s| s.index.packages.len()).sum()
    }

    /// Whether there are no packages at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The paragraph of `id` as its index has it.
    pub fn stanza(&self, id: PackageId) -> &str {
        self.sources[id.source as usize]
            .index
            .stanza(id.index as usize)
    }

    /// The URL `id`'s file is fetched from.
    pub fn url(&self, id: PackageId) -> String {
        let src = self.source(id);
        if let Some(file) = src.local_files.get(id.index as usize) {
            return format!("file://{}", file.display());
        }
        let base = &src.base_url;
        format!("{}/{}", base.trim_end_matches('/'), self.pkg(id).filename)
    }

    fn is_candidate(&self, id: PackageId) -> bool {
        self.candidates.contains_key(&id)
    }

    /// Whether package `p` can satisfy a relation qualified `qual` written
    /// by a package of architecture `from`.
    fn arch_ok(&self, p: &Package, qual: &ArchQual, from: &str) -> bool {
        let from = if from == "all" { &self.native } else { from };
        match qual {
            ArchQual::None => {
                p.arch == "all" || p.arch == from || p.multi_arch == MultiArch::Foreign
            }
            ArchQual::Any => {
                matches!(p.multi_arch, MultiArch::Allowed | MultiArch::Foreign)
                    || p.arch == "all"
                    || p.arch == from
            }
            ArchQual::Native => p.arch == "all" || p.arch == self.native,
            ArchQual::Arch(a) => p.arch == *a || (p.arch == "all" && *a == self.native),
        }
    }

    /// Candidates that satisfy `r` for a package of architecture `from`:
    /// real packages first, then providers (with `true` for virtual).
    fn satisfiers(&self, r: &Relation, from: &str) -> Vec<(PackageId, bool)> {
        let mut out = Vec::new();
        for &id in self.by_name.get(&r.name).into_iter().flatten() {
            let p = self.pkg(id);
            if self.is_candidate(id)
                && self.arch_ok(p, &r.arch, from)
                && r.version_ok(Some(&p.version))
            {
                out.push((id, false));
            }
        }
        for (id, v) in self.providers.get(&r.name).into_iter().flatten() {
            let p = self.pkg(*id);
            let qual_ok = match &r.arch {
                // `:any` on a virtual package: the provider must accept it.
                ArchQual::Any => {
                    matches!(p.multi_arch, MultiArch::Allowed | MultiArch::Foreign)
                        || p.arch == "all"
                        || p.arch == from
                }
                q => self.arch_ok(p, q, from),
            };
            if qual_ok && r.version_ok(v.as_ref()) {
                out.push((*id, true));
            }
        }
        out
    }

    /// Why nothing satisfies `r` (for messages).
    fn why_not(&self, r: &Relation, from: &str) -> String {
        let real: Vec<PackageId> = self.by_name.get(&r.name).cloned().unwrap_or_default();
        let provided = self.providers.get(&r.name).cloned().unwrap_or_default();
        if real.is_empty() && provided.is_empty() {
            return format!(
                "{}: no package of that name, and nothing provides it",
                r.name
            );
        }
        let mut parts = Vec::new();
        for id in real.iter().filter(|id| self.is_candidate(**id)) {
            let p = self.pkg(*id);
            if !self.arch_ok(p, &r.arch, from) {
                parts.push(format!(
                    "{} {} is for {} (Multi-Arch: {:?}), not usable from {from}",
                    p.name, p.version, p.arch, p.multi_arch
                ));
            } else {
                parts.push(format!("{} {} does not satisfy {r}", p.name, p.version));
            }
        }
        for (id, v) in &provided {
            let p = self.pkg(*id);
            match v {
                Some(v) => parts.push(format!(
                    "{} provides {} {v}, which does not satisfy {r}",
                    p.name, r.name
                )),
                None => parts.push(format!(
                    "{} provides {} without a version, which cannot satisfy {r}",
                    p.name, r.name
                )),
            }
        }
        if parts.is_empty() {
            parts.push(format!(
                "{} has no version for the set's architectures ({})",
                r.name,
                self.archs.join(", ")
            ));
        }
        parts.join("; ")
    }
}

/// Why a package is in the closure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Reason {
    /// The set names it.
    Requested,
    /// The base system holds it (`Essential`, `Priority: required`, ...).
    Base {
        /// Which rule.
        rule: String,
    },
    /// Another package depends on it.
    Dependency {
        /// `name version` of the package that needs it.
        of: String,
        /// The relation it satisfies.
        relation: String,
    },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Requested => f.write_str("requested"),
            Reason::Base { rule } => write!(f, "base: {rule}"),
            Reason::Dependency { of, relation } => write!(f, "{of} needs {relation}"),
        }
    }
}

/// A dependency nothing in the universe satisfies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Unsatisfied {
    /// `name version` of the package that needs it, or `the package set`.
    pub needed_by: String,
    /// The relation (an or-group).
    pub relation: String,
    /// Why each alternative fails.
    pub reason: String,
}

impl fmt::Display for Unsatisfied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} needs {}: {}",
            self.needed_by, self.relation, self.reason
        )
    }
}

/// The closure: the packages chosen, in the order chosen, each with why.
#[derive(Debug, Clone)]
pub struct Resolution {
    /// The chosen packages.
    pub packages: Vec<(PackageId, Reason)>,
    /// What could not be satisfied (empty for a complete closure).
    pub unsatisfied: Vec<Unsatisfied>,
    /// Recommends that were skipped because nothing satisfies them.
    pub skipped_recommends: Vec<Unsatisfied>,
}

impl Resolution {
    /// Whether every dependency is satisfied.
    pub fn is_complete(&self) -> bool {
        self.unsatisfied.is_empty()
    }
}

fn priority_rank(p: &Package) -> u8 {
    match p.priority.as_deref() {
        Some("required") => 0,
        Some("important") => 1,
        Some("standard") => 2,
        Some("optional") => 3,
        _ => 4,
    }
}

struct Walk<'u> {
    u: &'u Universe,
    recommends: bool,
    chosen: HashMap<PackageId, usize>,
    /// (name, arch) of every chosen package: one version each.
    chosen_names: HashMap<(String, String), PackageId>,
    visited: HashMap<PackageId, ()>,
    out: Resolution,
}

impl Walk<'_> {
    fn choose(&mut self, id: PackageId, reason: Reason) {
        if self.chosen.contains_key(&id) {
            return;
        }
        let p = self.u.pkg(id);
        let key = (p.name.clone(), p.arch.clone());
        if self.chosen_names.contains_key(&key) {
            return;
        }
        self.chosen_names.insert(key, id);
        self.chosen.insert(id, self.out.packages.len());
        self.out.packages.push((id, reason));
    }

    /// Whether a chosen package already satisfies `group`.
    fn satisfied(&self, group: &Alternatives, from: &str) -> bool {
        group.0.iter().any(|r| {
            self.u
                .satisfiers(r, from)
                .iter()
                .any(|(id, _)| self.chosen.contains_key(id))
        })
    }

    /// The package apt would pick for `group`, or why none.
    fn pick(&self, group: &Alternatives, from: &str) -> Result<PackageId, String> {
        let mut why = Vec::new();
        for r in &group.0 {
            let mut found = self.u.satisfiers(r, from);
            if found.is_empty() {
                why.push(self.u.why_not(r, from));
                continue;
            }
            // Real packages before providers; the depending package's own
            // architecture first; then the most important priority, then
            // the name.
            found.sort_by_key(|(id, virt)| {
                let p = self.u.pkg(*id);
                (
                    *virt,
                    !(p.arch == from || p.arch == "all"),
                    priority_rank(p),
                    p.name.clone(),
                    *id,
                )
            });
            return Ok(found[0].0);
        }
        Err(why.join("; "))
    }

    fn visit(&mut self, id: PackageId) {
        if self.visited.insert(id, ()).is_some() {
            return;
        }
        let p = self.u.pkg(id);
        let from = p.arch.clone();
        let me = format!("{} {}", p.name, p.version);
        let mut fields: Vec<(&str, bool)> = Vec::new();
        if let Some(t) = &p.pre_depends {
            fields.push((t, false));
        }
        if let Some(t) = &p.depends {
            fields.push((t, false));
        }
        if self.recommends {
            if let Some(t) = &p.recommends {
                fields.push((t, true));
            }
        }
        for (text, optional) in fields {
            let groups = match relation::parse_field(text) {
                Ok(g) => g,
                Err(e) => {
                    self.out.unsatisfied.push(Unsatisfied {
                        needed_by: me.clone(),
                        relation: text.to_owned(),
                        reason: format!("the field does not parse: {e}"),
                    });
                    continue;
                }
            };
            for group in groups {
                if self.satisfied(&group, &from) {
                    continue;
                }
                match self.pick(&group, &from) {
                    Ok(dep) => {
                        self.choose(
                            dep,
                            Reason::Dependency {
                                of: me.clone(),
                                relation: group.to_string(),
                            },
                        );
                        self.visit(dep);
                    }
                    Err(reason) => {
                        let u = Unsatisfied {
                            needed_by: me.clone(),
                            relation: group.to_string(),
                            reason,
                        };
                        if optional {
                            self.out.skipped_recommends.push(u);
                        } else {
                            self.out.unsatisfied.push(u);
                        }
                    }
                }
            }
        }
    }
}

/// Resolves a package set over a universe.
pub fn resolve(u: &Universe, set: &PackageSet) -> Resolution {
    let mut roots: Vec<(PackageId, Reason)> = Vec::new();
    let mut walk = Walk {
        u,
        recommends: set.recommends,
        chosen: HashMap::new(),
        chosen_names: HashMap::new(),
        visited: HashMap::new(),
        out: Resolution {
            packages: Vec::new(),
            unsatisfied: Vec::new(),
            skipped_recommends: Vec::new(),
        },
    };
    for (id, rule) in base_packages(u, set.base) {
        roots.push((id, Reason::Base { rule }));
    }
    for (group, text) in set.packages.iter().zip(&set.package_texts) {
        match request(u, group) {
            Ok(id) => roots.push((id, Reason::Requested)),
            Err(reason) => walk.out.unsatisfied.push(Unsatisfied {
                needed_by: "the package set".into(),
                relation: text.clone(),
                reason,
            }),
        }
    }
    // Like `apt-get install A B C`: everything asked for is marked first,
    // then each one's dependencies are followed in turn.
    for (id, reason) in &roots {
        walk.choose(*id, reason.clone());
    }
    for (id, _) in &roots {
        if walk.chosen.contains_key(id) {
            walk.visit(*id);
        }
    }
    walk.out
}

/// The base packages a set asks for, sorted by name, with the rule that
/// brings each in.
pub fn base_packages(u: &Universe, base: Base) -> Vec<(PackageId, String)> {
    let mut out = Vec::new();
    if base == Base::None {
        return out;
    }
    let mut ids: Vec<PackageId> = u.candidates.keys().copied().collect();
    ids.sort_by(|a, b| u.pkg(*a).name.cmp(&u.pkg(*b).name).then(a.cmp(b)));
    for id in ids {
        let p = u.pkg(id);
        if !(p.arch == u.native || p.arch == "all") {
            continue;
        }
        let rule = if p.essential {
            Some("Essential: yes")
        } else if base >= Base::Minbase && p.priority.as_deref() == Some("required") {
            Some("Priority: required")
        } else if base >= Base::Minbase && p.name == "apt" {
            Some("apt (bootstrap tools install it)")
        } else if base == Base::Important && p.priority.as_deref() == Some("important") {
            Some("Priority: important")
        } else {
            None
        };
        if let Some(rule) = rule {
            out.push((id, rule.to_owned()));
        }
    }
    out
}

impl PartialOrd for Base {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Base {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let rank = |b: &Base| match b {
            Base::None => 0,
            Base::Essential => 1,
            Base::Minbase => 2,
            Base::Important => 3,
        };
        rank(self).cmp(&rank(other))
    }
}

/// The package a set entry asks for: the candidate when it satisfies the
/// constraint, else the highest version that does (like `apt-get install
/// name=version`); a virtual name with exactly one provider is that
/// provider.
fn request(u: &Universe, group: &Alternatives) -> Result<PackageId, String> {
    let mut why = Vec::new();
    for r in &group.0 {
        let native = u.native.clone();
        let mut real: Vec<PackageId> = u
            .by_name
            .get(&r.name)
            .into_iter()
            .flatten()
            .copied()
            .filter(|id| {
                let p = u.pkg(*id);
                (p.arch == "all" || u.archs.contains(&p.arch)) && u.arch_ok(p, &r.arch, &native)
            })
            .collect();
        if !real.is_empty() {
            real.sort_by(|a, b| {
                u.is_candidate(*b)
                    .cmp(&u.is_candidate(*a))
                    .then_with(|| u.pkg(*b).version.cmp(&u.pkg(*a).version))
            });
            if let Some(id) = real
                .iter()
                .find(|id| r.version_ok(Some(&u.pkg(**id).version)))
            {
                return Ok(*id);
            }
            let have: Vec<String> = real
                .iter()
                .map(|id| u.pkg(*id).version.to_string())
                .collect();
            why.push(format!(
                "{}: versions {} do not satisfy {r}",
                r.name,
                have.join(", ")
            ));
            continue;
        }
        let providers = u.satisfiers(r, &native);
        match providers.len() {
            0 => why.push(u.why_not(r, &native)),
            1 => return Ok(providers[0].0),
            _ => {
                let names: Vec<String> = providers
                    .iter()
                    .map(|(id, _)| u.pkg(*id).name.clone())
                    .collect();
                why.push(format!(
                    "{} is a virtual package provided by {}: name one of them",
                    r.name,
                    names.join(", ")
                ));
            }
        }
    }
    Err(why.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn stanza(name: &str, version: &str, extra: &str) -> String {
        format!(
            "Package: {name}\nVersion: {version}\nArchitecture: amd64\n{extra}Filename: pool/main/{name}_{version}.deb\nSize: 1\nSHA256: {}\n",
            "0".repeat(64)
        )
    }

    fn universe(stanzas: &[String]) -> Universe {
        let text = stanzas.join("\n");
        let src = Source {
            suite: "t".into(),
            component: "main".into(),
            arch: "amd64".into(),
            not_automatic: false,
            base_url: "file:///m".into(),
            index: PackagesIndex::parse(text).unwrap(),
            local_files: Vec::new(),
        };
        Universe::new(vec![src], &["amd64".into()])
    }

    fn set(packages: &[&str], base: &str) -> PackageSet {
        let list: Vec<String> = packages.iter().map(|p| format!("{p:?}")).collect();
        PackageSet::parse(
            &format!(
                "distribution = \"t\"\nbase = \"{base}\"\npackages = [{}]\n",
                list.join(", ")
            ),
            Path::new("s.toml"),
            Path::new("/"),
        )
        .unwrap()
    }

    fn names(u: &Universe, r: &Resolution) -> Vec<String> {
        let mut v: Vec<String> = r
            .packages
            .iter()
            .map(|(id, _)| format!("{}={}", u.pkg(*id).name, u.pkg(*id).version))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn closure_follows_depends_and_pre_depends() {
        let u = universe(&[
            stanza(
                "app",
                "1",
                "Depends: liba (>= 2), libb\nPre-Depends: dpkgx\n",
            ),
            stanza("liba", "1", ""),
            stanza("liba", "3", "Depends: libc1\n"),
            stanza("libb", "1", ""),
            stanza("libc1", "1", ""),
            stanza("dpkgx", "1", ""),
            stanza("unrelated", "1", ""),
        ]);
        let r = resolve(&u, &set(&["app"], "none"));
        assert!(r.is_complete(), "{:?}", r.unsatisfied);
        assert_eq!(
            names(&u, &r),
            ["app=1", "dpkgx=1", "liba=3", "libb=1", "libc1=1"]
        );
        // Pre-Depends are followed before Depends.
        assert_eq!(u.pkg(r.packages[1].0).name, "dpkgx");
    }

    #[test]
    fn alternatives_take_the_first_unless_one_is_chosen() {
        let u = universe(&[
            stanza("app", "1", "Depends: mta1 | mta2, tool\n"),
            stanza("tool", "1", "Depends: mta2\n"),
            stanza("mta1", "1", ""),
            stanza("mta2", "1", ""),
            stanza("other", "1", "Depends: mta1 | mta2\n"),
        ]);
        let r = resolve(&u, &set(&["app"], "none"));
        assert_eq!(names(&u, &r), ["app=1", "mta1=1", "mta2=1", "tool=1"]);
        let r = resolve(&u, &set(&["tool", "other"], "none"));
        assert_eq!(names(&u, &r), ["mta2=1", "other=1", "tool=1"]);
    }

    #[test]
    fn virtual_and_versioned_provides() {
        let u = universe(&[
            stanza("app", "1", "Depends: awk, libfoo-abi (>= 2), editor\n"),
            stanza("mawk", "1", "Provides: awk\nPriority: required\n"),
            stanza("gawk", "1", "Provides: awk\nPriority: optional\n"),
            stanza("foo2", "1", "Provides: libfoo-abi (= 2)\n"),
            stanza("foo1", "1", "Provides: libfoo-abi (= 1)\n"),
            stanza("vim", "1", "Provides: editor\n"),
            stanza("nano", "1", "Provides: editor\n"),
        ]);
        let r = resolve(&u, &set(&["app"], "none"));
        assert!(r.is_complete(), "{:?}", r.unsatisfied);
        assert_eq!(names(&u, &r), ["app=1", "foo2=1", "mawk=1", "nano=1"]);
        // Asking for a virtual package with several providers is refused.
        let r = resolve(&u, &set(&["editor"], "none"));
        assert!(
            r.unsatisfied[0]
                .reason
                .contains("virtual package provided by"),
            "{:?}",
            r.unsatisfied
        );
    }

    #[test]
    fn unsatisfiable_is_reported_with_the_reason() {
        let u = universe(&[
            stanza("app", "1", "Depends: missing1, old (>= 2), virt (>= 1)\n"),
            stanza("old", "1", ""),
            stanza("pv", "1", "Provides: virt\n"),
        ]);
        let r = resolve(&u, &set(&["app", "nosuch"], "none"));
        let text: Vec<String> = r.unsatisfied.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 4, "{text:?}");
        assert!(
            text[0].starts_with("the package set needs nosuch: nosuch: no package"),
            "{text:?}"
        );
        assert!(text[1].contains("app 1 needs missing1: missing1: no package of that name"));
        assert!(text[2].contains("old 1 does not satisfy old (>= 2)"));
        assert!(text[3].contains("pv provides virt without a version"));
    }

    #[test]
    fn requests_with_versions_and_candidates() {
        let u = universe(&[stanza("x1", "1", ""), stanza("x1", "2", "")]);
        let r = resolve(&u, &set(&["x1 (<< 2)"], "none"));
        assert_eq!(names(&u, &r), ["x1=1"]);
        let r = resolve(&u, &set(&["x1"], "none"));
        assert_eq!(names(&u, &r), ["x1=2"]);
        let r = resolve(&u, &set(&["x1 (>> 3)"], "none"));
        assert!(r.unsatisfied[0]
            .reason
            .contains("versions 2, 1 do not satisfy"));
    }

    #[test]
    fn base_variants() {
        let u = universe(&[
            stanza(
                "ess",
                "1",
                "Essential: yes\nPriority: required\nDepends: libz\n",
            ),
            stanza("libz", "1", "Priority: optional\n"),
            stanza("req", "1", "Priority: required\n"),
            stanza("apt", "1", "Priority: important\n"),
            stanza("imp", "1", "Priority: important\n"),
        ]);
        let n = |b| names(&u, &resolve(&u, &set(&[], b)));
        assert_eq!(n("none"), Vec::<String>::new());
        assert_eq!(n("essential"), ["ess=1", "libz=1"]);
        assert_eq!(n("minbase"), ["apt=1", "ess=1", "libz=1", "req=1"]);
        assert_eq!(
            n("important"),
            ["apt=1", "ess=1", "imp=1", "libz=1", "req=1"]
        );
    }

    #[test]
    fn multi_arch() {
        let mk = |name: &str, arch: &str, extra: &str| {
            format!(
                "Package: {name}\nVersion: 1\nArchitecture: {arch}\n{extra}Filename: pool/{name}_{arch}.deb\nSize: 1\nSHA256: {}\n",
                "0".repeat(64)
            )
        };
        let amd = [
            mk("app", "amd64", "Depends: py:any, tool, lib\n"),
            mk("tool", "amd64", "Multi-Arch: foreign\n"),
            mk("lib", "amd64", "Multi-Arch: same\n"),
            mk("py", "amd64", "Multi-Arch: allowed\n"),
            mk("strict", "amd64", ""),
        ]
        .join("\n");
        let i386 = [
            mk("app32", "i386", "Depends: tool, lib, strict\n"),
            mk("lib", "i386", "Multi-Arch: same\n"),
            mk("tool", "i386", "Multi-Arch: foreign\n"),
        ]
        .join("\n");
        let src = |arch: &str, text: String| Source {
            suite: "t".into(),
            component: "main".into(),
            arch: arch.into(),
            not_automatic: false,
            base_url: "file:///m".into(),
            index: PackagesIndex::parse(text).unwrap(),
            local_files: Vec::new(),
        };
        let u = Universe::new(
            vec![src("amd64", amd), src("i386", i386)],
            &["amd64".into(), "i386".into()],
        );
        let r = resolve(&u, &set(&["app", "app32:i386"], "none"));
        let mut got: Vec<String> = r
            .packages
            .iter()
            .map(|(id, _)| format!("{}:{}", u.pkg(*id).name, u.pkg(*id).arch))
            .collect();
        got.sort();
        // tool (foreign) of amd64 serves i386 too; lib (same) is needed per
        // architecture; strict (no Multi-Arch) of amd64 cannot serve i386.
        assert_eq!(
            got,
            [
                "app32:i386",
                "app:amd64",
                "lib:amd64",
                "lib:i386",
                "py:amd64",
                "tool:amd64"
            ]
        );
        assert_eq!(r.unsatisfied.len(), 1);
        assert!(
            r.unsatisfied[0].reason.contains("strict 1 is for amd64"),
            "{:?}",
            r.unsatisfied
        );
    }
}
