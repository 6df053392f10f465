//! Rendering a zone file to nft text: one file that replaces table
//! `inet kld` in one transaction, and the list of what the kernel should hold
//! afterwards (used to verify the read-back and to compute diffs).

use std::fmt::Write as _;

use crate::addr::{Family, Network};
use crate::name::SetName;
use crate::service::{PortRange, Transport};
use crate::zones::{families_of, Rule, Zone, ZoneFile};

/// The family of kld's table.
pub const FAMILY: &str = "inet";
/// The name of kld's table: the only table kld ever changes.
pub const TABLE: &str = "kld";

/// The longest comment nft stores on a rule.
const COMMENT_MAX: usize = 127;

/// ICMPv6 that IPv6 needs to work: errors (PMTU: packet-too-big), neighbour
/// and router discovery, multicast listener discovery.
const ICMPV6_NEEDED: &str = "destination-unreachable, packet-too-big, time-exceeded, \
    parameter-problem, nd-router-advert, nd-router-solicit, nd-neighbor-solicit, \
    nd-neighbor-advert, mld-listener-query, mld-listener-report, mld2-listener-report";
/// ICMP errors IPv4 needs (destination-unreachable carries PMTU's
/// fragmentation-needed).
const ICMP_NEEDED: &str = "destination-unreachable, time-exceeded, parameter-problem";

/// A rendered ruleset: the nft text to load, and what the table should hold
/// once it is loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruleset {
    text: String,
    expected: Expected,
}

impl Ruleset {
    /// The exact text `nft -f` loads: it creates table `inet kld` if
    /// missing, deletes it, and defines it anew, all in one transaction.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// What the table should hold after loading.
    pub fn expected(&self) -> &Expected {
        &self.expected
    }

    /// The number of rules in the table.
    pub fn rule_count(&self) -> usize {
        self.expected.chains.iter().map(|c| c.rules.len()).sum()
    }
}

/// What kld's table should hold: its chains (in order) and sets.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Expected {
    /// The chains, base chains first.
    pub chains: Vec<ExpectedChain>,
    /// The sets, named ones first, then the dynamic ones kld makes for
    /// connection limits.
    pub sets: Vec<ExpectedSet>,
}

/// A chain kld's table should hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedChain {
    /// Its name.
    pub name: String,
    /// For a base chain: its type (`filter`, `nat`), hook and policy.
    pub base: Option<(String, String, String)>,
    /// Its rules, in order.
    pub rules: Vec<ExpectedRule>,
}

/// A rule kld's table should hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedRule {
    /// The comment that identifies it: a description and a hash of the text.
    pub comment: String,
    /// The rule as rendered (without its comment).
    pub text: String,
    /// Its verdict or final action: `accept`, `drop`, `jump CHAIN`, `dnat`,
    /// `masquerade`, or `log`.
    pub verdict: String,
}

/// A set kld's table should hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedSet {
    /// Its name.
    pub name: String,
    /// Its nft type (`ipv4_addr`, `ipv6_addr`).
    pub kind: String,
    /// Its elements as nft lists them (sorted), for named sets; `None` for
    /// dynamic sets, whose elements come and go with traffic.
    pub elements: Option<Vec<String>>,
}

/// The set type of a family.
pub(crate) fn set_type(f: Family) -> &'static str {
    match f {
        Family::V4 => "ipv4_addr",
        Family::V6 => "ipv6_addr",
    }
}

/// One nft rule's match: a layer-4 part and a source part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MatchPart {
    l4: L4,
    source: Source,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum L4 {
    Ports(Transport, Vec<PortRange>),
    Icmp(Vec<String>),
    Icmpv6(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    Any,
    Nets(Family, Vec<Network>),
    Set(Family, SetName),
}

impl L4 {
    fn families(&self) -> &'static [Family] {
        match self {
            L4::Ports(..) => &[Family::V4, Family::V6],
            L4::Icmp(_) => &[Family::V4],
            L4::Icmpv6(_) => &[Family::V6],
        }
    }

    fn covers(&self, other: &L4) -> bool {
        match (self, other) {
            (L4::Ports(t, a), L4::Ports(u, b)) => {
                t == u && b.iter().all(|p| a.iter().any(|q| q.contains(p)))
            }
            (L4::Icmp(a), L4::Icmp(b)) | (L4::Icmpv6(a), L4::Icmpv6(b)) => {
                b.iter().all(|t| a.contains(t))
            }
            _ => false,
        }
    }

    fn render(&self) -> String {
        match self {
            L4::Ports(t, p) => format!("{} dport {}", t.nft(), braces(p)),
            L4::Icmp(types) => format!("icmp type {}", braces(types)),
            L4::Icmpv6(types) => format!("icmpv6 type {}", braces(types)),
        }
    }
}

impl MatchPart {
    /// Whether everything `other` matches, this matches too.
    pub(crate) fn covers(&self, other: &MatchPart) -> bool {
        let source = match (&self.source, &other.source) {
            (Source::Any, _) => true,
            (Source::Nets(f, a), Source::Nets(g, b)) => {
                f == g && b.iter().all(|n| a.iter().any(|m| m.contains(n)))
            }
            (Source::Set(f, a), Source::Set(g, b)) => f == g && a == b,
            _ => false,
        };
        source && self.l4.covers(&other.l4)
    }

    fn render(&self) -> String {
        match &self.source {
            Source::Any => self.l4.render(),
            Source::Nets(f, nets) => {
                format!("{} saddr {} {}", f.nft(), braces(nets), self.l4.render())
            }
            Source::Set(f, set) => format!("{} saddr @{set} {}", f.nft(), self.l4.render()),
        }
    }
}

/// `{ a, b }`.
fn braces<T: std::fmt::Display>(items: &[T]) -> String {
    let inner: Vec<String> = items.iter().map(ToString::to_string).collect();
    format!("{{ {} }}", inner.join(", "))
}

/// The nft matches one rule of a zone stands for (empty: it can never
/// match). `sets` gives the families of the named sets it refers to.
pub(crate) fn rule_matches(
    rule: &Rule,
    zone_sources: &[Network],
    sets: &[crate::zones::NamedSet],
) -> Vec<MatchPart> {
    let zone_families = families_of(zone_sources);
    let mut l4s: Vec<L4> = rule
        .ports
        .iter()
        .map(|(t, p)| L4::Ports(*t, p.clone()))
        .collect();
    if !rule.icmp.is_empty() {
        l4s.push(L4::Icmp(rule.icmp.clone()));
    }
    if !rule.icmpv6.is_empty() {
        l4s.push(L4::Icmpv6(rule.icmpv6.clone()));
    }
    let mut sources = Vec::new();
    if rule.from.is_empty() && rule.from_sets.is_empty() {
        sources.push(Source::Any);
    }
    for f in [Family::V4, Family::V6] {
        let nets: Vec<Network> = rule
            .from
            .iter()
            .copied()
            .filter(|n| n.family() == f)
            .collect();
        if !nets.is_empty() {
            sources.push(Source::Nets(f, nets));
        }
    }
    for name in &rule.from_sets {
        if let Some(set) = sets.iter().find(|s| &s.name == name) {
            sources.push(Source::Set(set.family, name.clone()));
        }
    }
    let mut parts = Vec::new();
    for source in &sources {
        for l4 in &l4s {
            let fits = |f: &Family| l4.families().contains(f) && zone_families.contains(f);
            let ok = match source {
                Source::Any => zone_families.iter().any(|f| l4.families().contains(f)),
                Source::Nets(f, _) | Source::Set(f, _) => fits(f),
            };
            if ok {
                parts.push(MatchPart {
                    l4: l4.clone(),
                    source: source.clone(),
                });
            }
        }
    }
    parts
}

/// FNV-1a, 32 bits: a short fingerprint of a rule's text for its comment.
fn fingerprint(text: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in text.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("{h:08x}")
}

/// A chain being rendered.
struct ChainOut {
    name: String,
    base: Option<(&'static str, &'static str, &'static str, &'static str)>,
    rules: Vec<ExpectedRule>,
}

impl ChainOut {
    fn regular(name: String) -> ChainOut {
        ChainOut {
            name,
            base: None,
            rules: Vec::new(),
        }
    }

    /// Adds a rule: `text` ends with its verdict (`verdict`); `what`
    /// describes it in the comment.
    fn rule(&mut self, what: &str, text: String, verdict: &str) {
        let print = fingerprint(&text);
        // Comments are quoted strings: nothing in them may end the quote.
        let mut what = what.replace(['"', '\\'], "'");
        let room = COMMENT_MAX - print.len() - 3;
        if what.len() > room {
            let mut cut = room - 3;
            while !what.is_char_boundary(cut) {
                cut -= 1;
            }
            what.truncate(cut);
            what.push_str("...");
        }
        self.rules.push(ExpectedRule {
            comment: format!("{what} [{print}]"),
            text,
            verdict: verdict.to_owned(),
        });
    }
}

/// The matches that put a packet in `zone`: `iifname`/`saddr` for traffic
/// arriving (`inbound`), `oifname`/`daddr` for traffic leaving.
fn zone_matches(zone: &Zone, inbound: bool) -> Vec<(Option<Family>, String)> {
    let (ifkey, addrkey) = if inbound {
        ("iifname", "saddr")
    } else {
        ("oifname", "daddr")
    };
    let ifaces: Vec<Option<String>> = if zone.interfaces.is_empty() {
        vec![None]
    } else {
        zone.interfaces
            .iter()
            .map(|i| Some(format!("{ifkey} \"{i}\"")))
            .collect()
    };
    let mut out = Vec::new();
    for i in &ifaces {
        if zone.sources.is_empty() {
            out.push((None, i.clone().unwrap_or_default()));
            continue;
        }
        for f in zone.families() {
            let nets: Vec<Network> = zone
                .sources
                .iter()
                .copied()
                .filter(|n| n.family() == f)
                .collect();
            let addr = format!("{} {addrkey} {}", f.nft(), braces(&nets));
            let text = match i {
                Some(i) => format!("{i} {addr}"),
                None => addr,
            };
            out.push((Some(f), text));
        }
    }
    out
}

fn join(parts: &[&str]) -> String {
    parts
        .iter()
        .filter(|p| !p.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Renders `file` to the nft text that replaces table `inet kld`.
pub fn render(file: &ZoneFile) -> Ruleset {
    let mut chains: Vec<ChainOut> = Vec::new();
    let mut dynamic_sets: Vec<(String, Family)> = Vec::new();

    let mut input = ChainOut {
        name: "input".into(),
        base: Some(("filter", "input", "filter", "drop")),
        rules: Vec::new(),
    };
    input.rule(
        "base: established, related",
        "ct state established,related accept".into(),
        "accept",
    );
    input.rule("base: loopback", "iif \"lo\" accept".into(), "accept");
    input.rule(
        "base: icmpv6 that IPv6 needs",
        format!("icmpv6 type {{ {ICMPV6_NEEDED} }} accept"),
        "accept",
    );
    input.rule(
        "base: icmp errors (PMTU)",
        format!("icmp type {{ {ICMP_NEEDED} }} accept"),
        "accept",
    );
    input.rule("base: invalid", "ct state invalid drop".into(), "drop");

    let mut ordered: Vec<&Zone> = file.zones.iter().filter(|z| z.by_source()).collect();
    ordered.extend(file.zones.iter().filter(|z| !z.by_source()));
    let mut zone_chains = Vec::new();
    for zone in &ordered {
        let chain = format!("in_{}", zone.name);
        for (_, m) in zone_matches(zone, true) {
            input.rule(
                &format!(
                    "zone {}: {}",
                    zone.name,
                    if m.is_empty() { "any" } else { &m }
                )
                .replace('"', ""),
                join(&[&m, &format!("jump {chain}")]),
                &format!("jump {chain}"),
            );
        }
        let mut zc = ChainOut::regular(chain);
        for (n, rule) in zone.allow.iter().enumerate() {
            let parts = rule_matches(rule, &zone.sources, &file.sets);
            let target = if rule.unlimited() {
                "accept".to_owned()
            } else {
                let name = format!("rule_{}_{n}", zone.name);
                let mut rc = ChainOut::regular(name.clone());
                if let Some(limit) = rule.connlimit {
                    let families: Vec<Family> = parts
                        .iter()
                        .flat_map(|p| match &p.source {
                            Source::Any => p.l4.families().to_vec(),
                            Source::Nets(f, _) | Source::Set(f, _) => vec![*f],
                        })
                        .filter(|f| zone.families().contains(f))
                        .collect();
                    for f in [Family::V4, Family::V6] {
                        if !families.contains(&f) {
                            continue;
                        }
                        let set = format!(
                            "kld_conn{}_{}_{n}",
                            if f == Family::V4 { 4 } else { 6 },
                            zone.name
                        );
                        rc.rule(
                            &format!(
                                "{}: {} connlimit {limit} {}",
                                zone.name,
                                rule.label,
                                f.name()
                            ),
                            format!(
                                "add @{set} {{ {} saddr ct count over {limit} }} drop",
                                f.nft()
                            ),
                            "drop",
                        );
                        dynamic_sets.push((set, f));
                    }
                }
                match rule.rate {
                    Some(rate) => rc.rule(
                        &format!("{}: {} rate {}", zone.name, rule.label, rate),
                        format!("limit rate {rate} accept"),
                        "accept",
                    ),
                    None => rc.rule(
                        &format!("{}: {}", zone.name, rule.label),
                        "accept".into(),
                        "accept",
                    ),
                }
                zone_chains.push(rc);
                format!("jump {name}")
            };
            for p in parts {
                zc.rule(
                    &format!("{}: {}", zone.name, rule.label),
                    format!("{} {target}", p.render()),
                    &target,
                );
            }
        }
        if let Some(rate) = zone.log_drops {
            zc.rule(
                &format!("{}: log drops", zone.name),
                format!(
                    "limit rate {rate} log prefix \"kld {} drop: \" level info",
                    zone.name
                ),
                "log",
            );
        }
        zc.rule(
            &format!("{}: drop the rest", zone.name),
            "counter drop".into(),
            "drop",
        );
        zone_chains.push(zc);
    }
    input.rule(
        "no zone: log drops",
        format!(
            "limit rate {} log prefix \"kld input drop: \" level info",
            crate::parse::DEFAULT_LOG_RATE
        ),
        "log",
    );

    let mut forward = ChainOut {
        name: "forward".into(),
        base: Some(("filter", "forward", "filter", "drop")),
        rules: Vec::new(),
    };
    forward.rule(
        "base: established, related",
        "ct state established,related accept".into(),
        "accept",
    );
    forward.rule("base: invalid", "ct state invalid drop".into(), "drop");
    for zone in &file.zones {
        for to in &zone.forward_to {
            let Some(dest) = file.zones.iter().find(|z| &z.name == to) else {
                continue;
            };
            for (fa, a) in zone_matches(zone, true) {
                for (fb, b) in zone_matches(dest, false) {
                    if matches!((fa, fb), (Some(x), Some(y)) if x != y) {
                        continue;
                    }
                    forward.rule(
                        &format!("forward {} -> {}", zone.name, dest.name),
                        join(&[&a, &b, "accept"]),
                        "accept",
                    );
                }
            }
        }
    }
    let mut prerouting = ChainOut {
        name: "prerouting".into(),
        base: Some(("nat", "prerouting", "dstnat", "accept")),
        rules: Vec::new(),
    };
    for pf in &file.port_forwards {
        let Some(zone) = file.zones.iter().find(|z| z.name == pf.zone) else {
            continue;
        };
        let family = if pf.to_addr.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        };
        let target = match family {
            Family::V4 => format!("{}:{}", pf.to_addr, pf.target_port()),
            Family::V6 => format!("[{}]:{}", pf.to_addr, pf.target_port()),
        };
        let what = format!(
            "port forward {} {} {} -> {target}",
            pf.zone,
            pf.transport.nft(),
            pf.port
        );
        for iface in &zone.interfaces {
            prerouting.rule(
                &what,
                format!(
                    "iifname \"{iface}\" {} dport {} dnat {} to {target}",
                    pf.transport.nft(),
                    pf.port,
                    family.nft()
                ),
                "dnat",
            );
            forward.rule(
                &what,
                format!(
                    "iifname \"{iface}\" {} daddr {} {} dport {} ct status dnat accept",
                    family.nft(),
                    pf.to_addr,
                    pf.transport.nft(),
                    pf.target_port()
                ),
                "accept",
            );
        }
    }
    forward.rule(
        "forward: log drops",
        format!(
            "limit rate {} log prefix \"kld forward drop: \" level info",
            crate::parse::DEFAULT_LOG_RATE
        ),
        "log",
    );
    let mut postrouting = ChainOut {
        name: "postrouting".into(),
        base: Some(("nat", "postrouting", "srcnat", "accept")),
        rules: Vec::new(),
    };
    for zone in file.zones.iter().filter(|z| z.masquerade) {
        for iface in &zone.interfaces {
            postrouting.rule(
                &format!("masquerade leaving {}", zone.name),
                format!("oifname \"{iface}\" masquerade"),
                "masquerade",
            );
        }
    }

    chains.push(input);
    chains.push(forward);
    if !prerouting.rules.is_empty() {
        chains.push(prerouting);
    }
    if !postrouting.rules.is_empty() {
        chains.push(postrouting);
    }
    chains.extend(zone_chains);

    let mut sets = Vec::new();
    for s in &file.sets {
        let mut elements: Vec<String> = s.elements.iter().map(ToString::to_string).collect();
        elements.sort();
        elements.dedup();
        sets.push(ExpectedSet {
            name: s.name.to_string(),
            kind: set_type(s.family).into(),
            elements: Some(elements),
        });
    }
    for (name, f) in &dynamic_sets {
        sets.push(ExpectedSet {
            name: name.clone(),
            kind: set_type(*f).into(),
            elements: None,
        });
    }

    let mut t = String::new();
    let _ = writeln!(
        t,
        "# kld zones: table {FAMILY} {TABLE}, replaced in one transaction."
    );
    let _ = writeln!(t, "table {FAMILY} {TABLE} {{}}");
    let _ = writeln!(t, "delete table {FAMILY} {TABLE}");
    let _ = writeln!(t, "table {FAMILY} {TABLE} {{");
    let _ = writeln!(
        t,
        "\tcomment \"kld zones (knft): changes made by hand are lost at the next apply\""
    );
    for s in &file.sets {
        let _ = writeln!(t, "\tset {} {{", s.name);
        let _ = writeln!(t, "\t\ttype {}", set_type(s.family));
        let _ = writeln!(t, "\t\tflags interval");
        if !s.elements.is_empty() {
            let _ = writeln!(t, "\t\telements = {}", braces(&s.elements));
        }
        let _ = writeln!(t, "\t}}");
    }
    for (name, f) in &dynamic_sets {
        let _ = writeln!(t, "\tset {name} {{");
        let _ = writeln!(t, "\t\ttype {}", set_type(*f));
        let _ = writeln!(t, "\t\tsize 65535");
        let _ = writeln!(t, "\t\tflags dynamic");
        let _ = writeln!(t, "\t}}");
    }
    for c in &chains {
        let _ = writeln!(t, "\tchain {} {{", c.name);
        if let Some((kind, hook, prio, policy)) = c.base {
            let _ = writeln!(
                t,
                "\t\ttype {kind} hook {hook} priority {prio}; policy {policy};"
            );
        }
        for r in &c.rules {
            let _ = writeln!(t, "\t\t{} comment \"{}\"", r.text, r.comment);
        }
        let _ = writeln!(t, "\t}}");
    }
    let _ = writeln!(t, "}}");

    let expected = Expected {
        chains: chains
            .into_iter()
            .map(|c| ExpectedChain {
                name: c.name,
                base: c.base.map(|(kind, hook, _, policy)| {
                    (kind.to_owned(), hook.to_owned(), policy.to_owned())
                }),
                rules: c.rules,
            })
            .collect(),
        sets,
    };
    Ruleset { text: t, expected }
}
