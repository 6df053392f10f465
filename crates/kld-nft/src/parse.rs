//! Reading a zone file: TOML into the checked model, with every mistake
//! reported at its line and column.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use crate::addr::{Family, Network};
use crate::name::{Interface, SetName, ZoneName};
use crate::render::{rule_matches, MatchPart};
use crate::service::{self, PortRange, Transport, ICMPV6_TYPES, ICMP_TYPES};
use crate::zones::{NamedSet, PortForward, Rate, Rule, Zone, ZoneFile};

/// The default rate of logged drops.
pub const DEFAULT_LOG_RATE: Rate = Rate {
    count: 5,
    unit: crate::zones::RateUnit::Minute,
    burst: Some(5),
};

/// One mistake in a zone file, at a place in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The line (from 1).
    pub line: usize,
    /// The column (from 1, in characters).
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

/// A zone file that cannot be used, with every mistake found in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct FileError {
    /// The file's name, as given.
    pub file: String,
    /// The mistakes, in the order of the file.
    pub problems: Vec<Problem>,
}

impl fmt::Display for FileError {
    /// `FILE:LINE:COLUMN: message`, one mistake a line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}:{}:{}: {}", self.file, p.line, p.column, p.message)?;
        }
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    zones: BTreeMap<Spanned<String>, Spanned<RawZone>>,
    #[serde(default)]
    sets: BTreeMap<Spanned<String>, Spanned<RawSet>>,
    #[serde(default)]
    port_forward: Vec<Spanned<RawForward>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawZone {
    #[serde(default)]
    interfaces: Vec<Spanned<String>>,
    #[serde(default)]
    sources: Vec<Spanned<String>>,
    #[serde(default)]
    allow: Vec<Spanned<RawRule>>,
    #[serde(default)]
    forward_to: Vec<Spanned<String>>,
    #[serde(default)]
    masquerade: bool,
    log_drops: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    service: Option<Spanned<toml::Value>>,
    tcp: Option<Spanned<toml::Value>>,
    udp: Option<Spanned<toml::Value>>,
    icmp: Option<Vec<Spanned<String>>>,
    icmpv6: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    from: Vec<Spanned<String>>,
    #[serde(default)]
    from_set: Vec<Spanned<String>>,
    rate: Option<Spanned<String>>,
    burst: Option<Spanned<i64>>,
    connlimit: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSet {
    #[serde(rename = "type")]
    kind: Spanned<String>,
    #[serde(default)]
    elements: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawForward {
    zone: Spanned<String>,
    #[serde(default = "default_proto")]
    proto: Spanned<String>,
    port: Spanned<i64>,
    to: Spanned<String>,
}

fn default_proto() -> Spanned<String> {
    Spanned::new(0..0, "tcp".to_owned())
}

/// Collects problems while checking.
struct Checker<'a> {
    text: &'a str,
    problems: Vec<(usize, String)>,
}

impl Checker<'_> {
    fn at(&mut self, span: &Range<usize>, message: impl Into<String>) {
        self.problems.push((span.start, message.into()));
    }

    fn ok<T, E: fmt::Display>(&mut self, span: &Range<usize>, r: Result<T, E>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.at(span, e.to_string());
                None
            }
        }
    }

    fn position(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        (line, before[line_start..].chars().count() + 1)
    }
}

impl ZoneFile {
    /// Reads and checks a zone file's text. `file` names it in messages.
    pub fn parse(text: &str, file: &str) -> Result<ZoneFile, FileError> {
        let mut c = Checker {
            text,
            problems: Vec::new(),
        };
        let parsed = match toml::from_str::<RawFile>(text) {
            Ok(raw) => Some(check(raw, &mut c)),
            Err(e) => {
                let start = e.span().map_or(0, |s| s.start);
                c.problems.push((start, e.message().trim().to_owned()));
                None
            }
        };
        match parsed {
            Some(model) if c.problems.is_empty() => Ok(model),
            _ => {
                c.problems.sort_by_key(|(offset, _)| *offset);
                let problems = c
                    .problems
                    .iter()
                    .map(|(offset, message)| {
                        let (line, column) = c.position(*offset);
                        Problem {
                            line,
                            column,
                            message: message.clone(),
                        }
                    })
                    .collect();
                Err(FileError {
                    file: file.to_owned(),
                    problems,
                })
            }
        }
    }
}

fn check(raw: RawFile, c: &mut Checker<'_>) -> ZoneFile {
    let mut sets = Vec::new();
    for (name, set) in &raw.sets {
        let Some(set_name) = c.ok(&name.span(), SetName::new(name.get_ref())) else {
            continue;
        };
        let set = set.get_ref();
        let family = match set.kind.get_ref().as_str() {
            "ipv4" => Family::V4,
            "ipv6" => Family::V6,
            other => {
                c.at(
                    &set.kind.span(),
                    format!("set type {other:?} is not known: use \"ipv4\" or \"ipv6\""),
                );
                continue;
            }
        };
        let mut elements = Vec::new();
        for e in &set.elements {
            if let Some(n) = c.ok(&e.span(), e.get_ref().parse::<Network>()) {
                if n.family() != family {
                    c.at(
                        &e.span(),
                        format!(
                            "{n} is {} but set {set_name} holds {}",
                            n.family().name(),
                            family.name()
                        ),
                    );
                } else {
                    elements.push(n);
                }
            }
        }
        sets.push(NamedSet {
            name: set_name,
            family,
            elements,
        });
    }

    let zone_names: Vec<String> = raw.zones.keys().map(|k| k.get_ref().clone()).collect();
    if raw.zones.is_empty() {
        c.at(
            &(0..0),
            "the file defines no zone: add at least one [zones.NAME] table",
        );
    }
    let mut zones = Vec::new();
    let mut zone_spans = Vec::new();
    // Where each zone's interfaces were written, for the overlap check.
    let mut bound: Vec<(ZoneName, Interface, Range<usize>, bool)> = Vec::new();
    let mut in_file_order: Vec<_> = raw.zones.iter().collect();
    in_file_order.sort_by_key(|(name, _)| name.span().start);
    for (name, zone) in in_file_order {
        let span = zone.span();
        let zone_raw = zone.get_ref();
        let Some(zone_name) = c.ok(&name.span(), ZoneName::new(name.get_ref())) else {
            continue;
        };
        let mut interfaces: Vec<Interface> = Vec::new();
        for i in &zone_raw.interfaces {
            if let Some(iface) = c.ok(&i.span(), Interface::new(i.get_ref())) {
                if interfaces.contains(&iface) {
                    c.at(
                        &i.span(),
                        format!("interface {iface} is listed twice in zone {zone_name}"),
                    );
                    continue;
                }
                bound.push((
                    zone_name.clone(),
                    iface.clone(),
                    i.span(),
                    !zone_raw.sources.is_empty(),
                ));
                interfaces.push(iface);
            }
        }
        let mut sources = Vec::new();
        for s in &zone_raw.sources {
            if let Some(n) = c.ok(&s.span(), s.get_ref().parse::<Network>()) {
                sources.push(n);
            }
        }
        if zone_raw.interfaces.is_empty() && zone_raw.sources.is_empty() {
            c.at(
                &span,
                format!(
                    "zone {zone_name} is bound to nothing: give it interfaces, sources or both"
                ),
            );
        }
        let mut forward_to = Vec::new();
        for f in &zone_raw.forward_to {
            if !zone_names.contains(f.get_ref()) {
                c.at(
                    &f.span(),
                    format!(
                        "unknown zone {:?} in forward_to of zone {zone_name}",
                        f.get_ref()
                    ),
                );
            } else if f.get_ref() == zone_name.as_str() {
                c.at(&f.span(), format!("zone {zone_name} forwards to itself"));
            } else if let Ok(z) = ZoneName::new(f.get_ref()) {
                forward_to.push(z);
            }
        }
        if zone_raw.masquerade && zone_raw.interfaces.is_empty() {
            c.at(
                &span,
                format!("zone {zone_name} masquerades but has no interfaces to leave by"),
            );
        }
        let log_drops = match &zone_raw.log_drops {
            None => Some(DEFAULT_LOG_RATE),
            Some(v) => match v.get_ref() {
                toml::Value::Boolean(true) => Some(DEFAULT_LOG_RATE),
                toml::Value::Boolean(false) => None,
                toml::Value::String(s) => c.ok(&v.span(), Rate::parse(s)),
                _ => {
                    c.at(
                        &v.span(),
                        "log_drops is true, false or a rate such as \"10/minute\"",
                    );
                    None
                }
            },
        };
        let mut allow: Vec<Checked> = Vec::new();
        for r in &zone_raw.allow {
            if let Some(rule) = check_rule(r.get_ref(), &r.span(), &zone_name, &sources, &sets, c) {
                let checked = Checked {
                    parts: rule_matches(&rule, &sources, &sets),
                    ports: port_envelope(&rule),
                    rule,
                    span: r.span(),
                };
                check_reachable(&checked, &allow, c);
                allow.push(checked);
            }
        }
        zone_spans.push(span.clone());
        zones.push(Zone {
            name: zone_name,
            interfaces,
            sources,
            allow: allow.into_iter().map(|c| c.rule).collect(),
            forward_to,
            masquerade: zone_raw.masquerade,
            log_drops,
        });
    }
    check_overlaps(&zones, &zone_spans, &bound, c);

    let mut port_forwards = Vec::new();
    for f in &raw.port_forward {
        let fr = f.get_ref();
        let Some(zone) = zones.iter().find(|z| z.name.as_str() == fr.zone.get_ref()) else {
            if !zone_names.contains(fr.zone.get_ref()) {
                c.at(
                    &fr.zone.span(),
                    format!("unknown zone {:?} in port_forward", fr.zone.get_ref()),
                );
            }
            continue;
        };
        if zone.interfaces.is_empty() {
            c.at(
                &fr.zone.span(),
                format!(
                    "zone {} has no interfaces for forwarded connections to arrive on",
                    zone.name
                ),
            );
        }
        let transport = match fr.proto.get_ref().as_str() {
            "tcp" => Transport::Tcp,
            "udp" => Transport::Udp,
            other => {
                c.at(
                    &fr.proto.span(),
                    format!("proto {other:?} is not tcp or udp"),
                );
                continue;
            }
        };
        let Some(port) = c.ok(&fr.port.span(), PortRange::from_number(*fr.port.get_ref())) else {
            continue;
        };
        let Some((to_addr, to_port)) = c.ok(&fr.to.span(), forward_target(fr.to.get_ref())) else {
            continue;
        };
        if port_forwards.iter().any(|p: &PortForward| {
            p.zone == zone.name && p.transport == transport && p.port == port.first
        }) {
            c.at(
                &fr.port.span(),
                format!(
                    "zone {} already forwards {} port {}: this port_forward can never match",
                    zone.name,
                    transport.nft(),
                    port.first
                ),
            );
            continue;
        }
        port_forwards.push(PortForward {
            zone: zone.name.clone(),
            transport,
            port: port.first,
            to_addr,
            to_port,
        });
    }
    ZoneFile {
        zones,
        sets,
        port_forwards,
    }
}

/// Reads `10.0.0.2`, `10.0.0.2:80`, `2001:db8::2` or `[2001:db8::2]:80`.
fn forward_target(s: &str) -> Result<(IpAddr, Option<u16>), String> {
    if let Ok(addr) = s.parse::<IpAddr>() {
        return Ok((addr, None));
    }
    match s.parse::<SocketAddr>() {
        Ok(sa) if sa.port() != 0 => Ok((sa.ip(), Some(sa.port()))),
        Ok(_) => Err(format!("port 0 in {s:?} is out of range (1-65535)")),
        Err(_) => Err(format!(
            "{s:?} is not an address or address:port (e.g. 10.0.0.2:80, [2001:db8::2]:80)"
        )),
    }
}

fn ports(value: &Spanned<toml::Value>, c: &mut Checker<'_>) -> Vec<PortRange> {
    let span = value.span();
    let one = |v: &toml::Value| -> Result<PortRange, String> {
        match v {
            toml::Value::Integer(n) => PortRange::from_number(*n),
            toml::Value::String(s) => PortRange::parse(s),
            _ => Err("a port is a number (22) or a range in a string (\"8000-8100\")".to_owned()),
        }
    };
    let items: Vec<&toml::Value> = match value.get_ref() {
        toml::Value::Array(a) => a.iter().collect(),
        v => vec![v],
    };
    if items.is_empty() {
        c.at(&span, "an empty list of ports matches nothing");
    }
    let mut out = Vec::new();
    for v in items {
        if let Some(p) = c.ok(&span, one(v)) {
            out.push(p);
        }
    }
    out
}

fn check_rule(
    r: &RawRule,
    span: &Range<usize>,
    zone: &ZoneName,
    zone_sources: &[Network],
    sets: &[NamedSet],
    c: &mut Checker<'_>,
) -> Option<Rule> {
    let before = c.problems.len();
    let mut by_transport: BTreeMap<Transport, Vec<PortRange>> = BTreeMap::new();
    let mut labels = Vec::new();
    if let Some(svc) = &r.service {
        let names: Vec<&toml::Value> = match svc.get_ref() {
            toml::Value::Array(a) => a.iter().collect(),
            v => vec![v],
        };
        for n in names {
            match n.as_str() {
                Some(name) => match service::service(name) {
                    Some(ports) => {
                        labels.push(name.to_owned());
                        for (t, p) in ports {
                            by_transport.entry(*t).or_default().push(PortRange::single(*p));
                        }
                    }
                    None => c.at(
                        &svc.span(),
                        format!(
                            "unknown service {name:?}; known: {}; or give tcp = [...] / udp = [...]",
                            service::SERVICES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
                        ),
                    ),
                },
                None => c.at(&svc.span(), "service is a name (\"ssh\") or a list of names"),
            }
        }
    }
    for (t, v) in [(Transport::Tcp, &r.tcp), (Transport::Udp, &r.udp)] {
        if let Some(v) = v {
            let p = ports(v, c);
            labels.push(format!(
                "{} {}",
                t.nft(),
                p.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            ));
            by_transport.entry(t).or_default().extend(p);
        }
    }
    let mut icmp_types = |list: &Option<Vec<Spanned<String>>>, known: &[&str], what: &str| {
        let mut out = Vec::new();
        for t in list.iter().flatten() {
            if known.contains(&t.get_ref().as_str()) {
                if !out.contains(t.get_ref()) {
                    out.push(t.get_ref().clone());
                }
            } else {
                c.at(
                    &t.span(),
                    format!(
                        "unknown {what} type {:?}; known: {}",
                        t.get_ref(),
                        known.join(", ")
                    ),
                );
            }
        }
        if list.as_ref().is_some_and(Vec::is_empty) {
            c.at(
                span,
                format!("an empty list of {what} types matches nothing"),
            );
        }
        out
    };
    let icmp = icmp_types(&r.icmp, ICMP_TYPES, "icmp");
    let icmpv6 = icmp_types(&r.icmpv6, ICMPV6_TYPES, "icmpv6");
    if !icmp.is_empty() {
        labels.push(format!("icmp {}", icmp.join(",")));
    }
    if !icmpv6.is_empty() {
        labels.push(format!("icmpv6 {}", icmpv6.join(",")));
    }
    if r.service.is_none()
        && r.tcp.is_none()
        && r.udp.is_none()
        && r.icmp.is_none()
        && r.icmpv6.is_none()
    {
        c.at(
            span,
            format!("a rule in zone {zone} allows nothing: give service, tcp, udp, icmp or icmpv6"),
        );
    }
    let mut from = Vec::new();
    for f in &r.from {
        if let Some(n) = c.ok(&f.span(), f.get_ref().parse::<Network>()) {
            if !zone_sources.is_empty() && !zone_sources.iter().any(|z| z.overlaps(&n)) {
                c.at(
                    &f.span(),
                    format!(
                        "source {n} is outside zone {zone}'s sources: the rule can never match it"
                    ),
                );
            }
            from.push(n);
        }
    }
    let mut from_sets = Vec::new();
    for s in &r.from_set {
        match sets.iter().find(|set| set.name.as_str() == s.get_ref()) {
            Some(set) => from_sets.push(set.name.clone()),
            None => c.at(
                &s.span(),
                format!(
                    "unknown set {:?}: declare it as [sets.{}]",
                    s.get_ref(),
                    s.get_ref()
                ),
            ),
        }
    }
    let mut rate = None;
    if let Some(rs) = &r.rate {
        rate = c.ok(&rs.span(), Rate::parse(rs.get_ref()));
    }
    if let Some(b) = &r.burst {
        match (&mut rate, u32::try_from(*b.get_ref())) {
            (_, Err(_)) | (_, Ok(0)) => c.at(&b.span(), "burst is a number of packets, at least 1"),
            (Some(rate), Ok(n)) => rate.burst = Some(n),
            (None, Ok(_)) if r.rate.is_none() => c.at(&b.span(), "burst needs a rate"),
            (None, Ok(_)) => {}
        }
    }
    let mut connlimit = None;
    if let Some(l) = &r.connlimit {
        match u32::try_from(*l.get_ref()) {
            Ok(n) if n >= 1 => connlimit = Some(n),
            _ => c.at(
                &l.span(),
                "connlimit is a number of connections, at least 1",
            ),
        }
    }
    if c.problems.len() > before {
        return None;
    }
    let mut label = labels.join(" ");
    if !from.is_empty() || !from_sets.is_empty() {
        let mut srcs: Vec<String> = from.iter().map(ToString::to_string).collect();
        srcs.extend(from_sets.iter().map(|s| format!("@{s}")));
        label.push_str(&format!(" from {}", srcs.join(",")));
    }
    Some(Rule {
        label,
        ports: by_transport.into_iter().collect(),
        icmp,
        icmpv6,
        from,
        from_sets,
        rate,
        connlimit,
    })
    .filter(|rule| {
        let parts = rule_matches(rule, zone_sources, sets);
        if parts.is_empty() {
            c.at(
                span,
                format!(
                    "this rule in zone {zone} can never match: {}",
                    never_why(rule, zone_sources)
                ),
            );
        }
        !parts.is_empty()
    })
}

fn never_why(rule: &Rule, zone_sources: &[Network]) -> String {
    let what = if !rule.icmp.is_empty() && rule.icmpv6.is_empty() && rule.ports.is_empty() {
        "icmp is IPv4 only"
    } else if !rule.icmpv6.is_empty() && rule.icmp.is_empty() && rule.ports.is_empty() {
        "icmpv6 is IPv6 only"
    } else {
        "its protocols and sources have no address family in common"
    };
    if zone_sources.is_empty() {
        format!("{what}, and its sources are of the other family")
    } else {
        format!("{what}, and the zone's or the rule's sources are of the other family")
    }
}

/// A checked rule, with its nft matches and its place in the file.
struct Checked {
    rule: Rule,
    parts: Vec<MatchPart>,
    span: Range<usize>,
    /// The lowest and highest port the rule names, if it names ports.
    ports: Option<(u16, u16)>,
}

/// The lowest and highest port of a rule: a rule can only hide another
/// whose ports lie within its own (a cheap test before the exact one).
fn port_envelope(rule: &Rule) -> Option<(u16, u16)> {
    let ranges = rule.ports.iter().flat_map(|(_, p)| p.iter());
    ranges.fold(None, |acc, r| match acc {
        None => Some((r.first, r.last)),
        Some((lo, hi)) => Some((lo.min(r.first), hi.max(r.last))),
    })
}

/// Refuses a rule that an earlier unlimited rule of the zone already accepts
/// entirely: it can never match.
fn check_reachable(this: &Checked, earlier: &[Checked], c: &mut Checker<'_>) {
    for prev in earlier.iter().filter(|p| p.rule.unlimited()) {
        let may_cover = match (prev.ports, this.ports) {
            (Some((lo, hi)), Some((first, last))) => lo <= first && last <= hi,
            (None, Some(_)) => false,
            (_, None) => true,
        };
        if !may_cover {
            continue;
        }
        let covered = this
            .parts
            .iter()
            .all(|p| prev.parts.iter().any(|q| q.covers(p)));
        if covered {
            let (line, _) = c.position(prev.span.start);
            c.at(
                &this.span,
                format!(
                    "this rule ({}) can never match: the rule at line {line} ({}) already accepts all it matches",
                    this.rule.label, prev.rule.label
                ),
            );
            return;
        }
    }
}

/// Refuses an interface claimed by two zones that would both take its
/// traffic (zones bound to sources as well are more specific and checked
/// first, so they may share interfaces with zones that are not).
fn check_overlaps(
    zones: &[Zone],
    spans: &[Range<usize>],
    bound: &[(ZoneName, Interface, Range<usize>, bool)],
    c: &mut Checker<'_>,
) {
    let mut bound: Vec<_> = bound.iter().collect();
    bound.sort_by_key(|(_, _, span, _)| span.start);
    for (i, (za, ia, _, sa)) in bound.iter().enumerate() {
        for (zb, ib, span_b, sb) in &bound[i + 1..] {
            if za == zb || !ia.overlaps(ib) {
                continue;
            }
            let sources_overlap = match (sa, sb) {
                (false, false) => true,
                (true, true) => {
                    let a = zones.iter().find(|z| &z.name == za);
                    let b = zones.iter().find(|z| &z.name == zb);
                    match (a, b) {
                        (Some(a), Some(b)) => a
                            .sources
                            .iter()
                            .any(|x| b.sources.iter().any(|y| x.overlaps(y))),
                        _ => false,
                    }
                }
                _ => false,
            };
            if sources_overlap {
                let what = if ia == ib {
                    format!("interface {ib} is in two zones, {za} and {zb}")
                } else {
                    format!("interface {ib} of zone {zb} overlaps {ia} of zone {za}")
                };
                c.at(span_b, format!("{what}: a packet must belong to one zone"));
            }
        }
    }
    // A zone bound to sources on any interface must not share sources with
    // another source zone (pairs that both have interfaces were seen above).
    let by_source: Vec<(&Zone, &Range<usize>)> = zones
        .iter()
        .zip(spans)
        .filter(|(z, _)| z.by_source())
        .collect();
    for (i, (a, _)) in by_source.iter().enumerate() {
        for (b, span) in &by_source[i + 1..] {
            if !a.interfaces.is_empty() && !b.interfaces.is_empty() {
                continue;
            }
            if let Some(n) = a
                .sources
                .iter()
                .find(|x| b.sources.iter().any(|y| x.overlaps(y)))
            {
                c.at(
                    span,
                    format!(
                        "source {n} is in two zones, {} and {}: a packet must belong to one zone",
                        a.name, b.name
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        match ZoneFile::parse(text, "z.toml") {
            Ok(_) => Vec::new(),
            Err(e) => e.to_string().lines().map(str::to_owned).collect(),
        }
    }

    const WEB: &str = include_str!("../examples/web-server.toml");

    #[test]
    fn the_example_parses() {
        let f = ZoneFile::parse(WEB, "web-server.toml").unwrap();
        assert_eq!(f.zones.len(), 2);
        let public = f
            .zones
            .iter()
            .find(|z| z.name.as_str() == "public")
            .unwrap();
        assert_eq!(public.interfaces[0].as_str(), "eth0");
        assert_eq!(
            public.allow[0].ports,
            vec![(
                Transport::Tcp,
                vec![PortRange::single(80), PortRange::single(443)]
            )]
        );
        assert_eq!(public.log_drops, Some(DEFAULT_LOG_RATE));
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let p = problems("[zones.a]\ninterfaces = [\"eth0\"\n");
        assert_eq!(p.len(), 1);
        assert!(p[0].starts_with("z.toml:2:"), "{p:?}");
        let p = problems("[zones.a]\ninterfaces = [\"eth0\"]\ncolour = 1\n");
        assert!(
            p[0].starts_with("z.toml:3:1: unknown field `colour`"),
            "{p:?}"
        );
    }

    #[test]
    fn every_mistake_is_reported_where_it_is() {
        let text = "\
[zones.public]
interfaces = [\"eth0\"]
forward_to = [\"nowhere\"]
[[zones.public.allow]]
tcp = [22, \"90-80\"]
[[zones.public.allow]]
service = \"gopher\"
[zones.mgmt]
interfaces = [\"eth0\"]
[zones.other]
interfaces = [\"wg*\"]
[zones.wg]
interfaces = [\"wg1\"]
";
        let p = problems(text);
        assert_eq!(
            p,
            [
                "z.toml:3:15: unknown zone \"nowhere\" in forward_to of zone public",
                "z.toml:5:7: the range 90-80 ends before it starts",
                "z.toml:7:11: unknown service \"gopher\"; known: dhcp-client, dhcpv6-client, dns, http, http3, https, \
                 imap, imaps, kubernetes-api, mdns, mysql, nfs, node-exporter, ntp, pop3s, postgres, prometheus, \
                 redis, rsync, smb, smtp, ssh, submission, syslog, wireguard; or give tcp = [...] / udp = [...]",
                "z.toml:9:15: interface eth0 is in two zones, public and mgmt: a packet must belong to one zone",
                "z.toml:13:15: interface wg1 of zone wg overlaps wg* of zone other: a packet must belong to one zone",
            ]
        );
    }

    #[test]
    fn rules_that_can_never_match_are_refused() {
        let shadowed = "[zones.a]\ninterfaces = [\"eth0\"]\n\
                        [[zones.a.allow]]\ntcp = \"1-1024\"\n\
                        [[zones.a.allow]]\nservice = \"ssh\"\nfrom = [\"10.0.0.0/8\"]\n";
        let p = problems(shadowed);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].starts_with("z.toml:5:1: this rule (ssh from 10.0.0.0/8) can never match: the rule at line 3 (tcp 1-1024)"), "{p:?}");
        // A limited rule does not shadow what follows it.
        assert!(problems(
            &shadowed.replace("tcp = \"1-1024\"", "tcp = \"1-1024\"\nrate = \"1/second\"")
        )
        .is_empty());
        let wrong_family = "[zones.a]\nsources = [\"10.0.0.0/8\"]\n[[zones.a.allow]]\nicmpv6 = [\"echo-request\"]\n";
        assert!(
            problems(wrong_family)[0].contains("can never match"),
            "{:?}",
            problems(wrong_family)
        );
        let outside = "[zones.a]\nsources = [\"10.0.0.0/8\"]\n[[zones.a.allow]]\ntcp = 22\nfrom = [\"192.168.0.0/16\"]\n";
        assert!(problems(outside)[0]
            .starts_with("z.toml:5:9: source 192.168.0.0/16 is outside zone a's sources"));
    }

    #[test]
    fn zones_sets_and_forwards_are_checked() {
        assert!(problems("")[0].contains("defines no zone"));
        assert!(problems("[zones.a]\n")[0].contains("bound to nothing"));
        assert!(problems("[zones.A]\ninterfaces = [\"x\"]\n")[0].contains("must start with a-z"));
        let p = problems("[sets.s]\ntype = \"ipv4\"\nelements = [\"::1\"]\n[zones.a]\ninterfaces = [\"x\"]\n[[zones.a.allow]]\ntcp = 1\nfrom_set = [\"t\"]\n");
        assert!(p[0].contains("::1 is IPv6 but set s holds IPv4"), "{p:?}");
        assert!(p[1].contains("unknown set \"t\""), "{p:?}");
        let p = problems("[zones.a]\nsources = [\"10.0.0.0/8\"]\n[[port_forward]]\nzone = \"a\"\nport = 80\nto = \"10.0.0.2:0\"\n");
        assert!(
            p[0].contains("no interfaces for forwarded connections"),
            "{p:?}"
        );
        assert!(p[1].contains("port 0"), "{p:?}");
        let p = problems(
            "[zones.a]\nsources = [\"10.0.0.0/8\"]\n[zones.b]\nsources = [\"10.1.0.0/16\"]\n",
        );
        assert!(
            p[0].contains("source 10.0.0.0/8 is in two zones, a and b"),
            "{p:?}"
        );
        let forward = "[[port_forward]]\nzone = \"a\"\nport = 80\nto = \"10.0.0.2\"\n";
        let p = problems(&format!(
            "[zones.a]\ninterfaces = [\"x\"]\n{forward}{forward}"
        ));
        assert_eq!(
            p,
            ["z.toml:9:8: zone a already forwards tcp port 80: this port_forward can never match"]
        );
        let p = problems("[zones.a]\ninterfaces = [\"x\"]\n[[zones.a.allow]]\ntcp = 1\nburst = 5\nconnlimit = 0\n");
        assert!(
            p[0].contains("burst needs a rate") && p[1].contains("connlimit"),
            "{p:?}"
        );
    }

    #[test]
    fn positions_count_characters() {
        let c = Checker {
            text: "ä\nxé y",
            problems: Vec::new(),
        };
        assert_eq!(c.position(0), (1, 1));
        assert_eq!(c.position(3), (2, 1));
        assert_eq!(c.position(6), (2, 3));
        assert_eq!(c.position(5), (2, 2), "inside a character: its start");
        assert_eq!(c.position(100), (2, 5));
    }
}
