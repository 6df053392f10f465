//! The live table, read back through the `nftables` crate's JSON schema, and
//! how it compares with what a [`Ruleset`](crate::Ruleset) meant.

use std::collections::{HashMap, HashSet};

use nftables::expr::{Expression, NamedExpression};
use nftables::schema::{NfListObject, NfObject, Nftables, SetTypeValue};
use nftables::stmt::{Counter, Statement};
use nftables::types::{NfChainPolicy, NfChainType, NfHook};

use crate::render::{Expected, TABLE};

/// Table `inet kld` as the kernel holds it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LiveTable {
    /// Its chains, in the order nft lists them.
    pub chains: Vec<LiveChain>,
    /// Its sets.
    pub sets: Vec<LiveSet>,
}

/// A chain of the live table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveChain {
    /// Its name.
    pub name: String,
    /// For a base chain: its type, hook and policy.
    pub base: Option<(String, String, String)>,
    /// Its rules, in order.
    pub rules: Vec<LiveRule>,
}

/// A rule of the live table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveRule {
    /// Its comment (kld's rules all have one).
    pub comment: Option<String>,
    /// Its handle.
    pub handle: Option<u32>,
    /// Its last statement's verdict or action (`accept`, `drop`,
    /// `jump CHAIN`, `dnat`, `masquerade`, `log`, or `other`).
    pub verdict: String,
    /// The packets its counter has counted, if it has one.
    pub packets: Option<u64>,
}

/// A set of the live table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSet {
    /// Its name.
    pub name: String,
    /// Its type (`ipv4_addr`, ...).
    pub kind: String,
    /// Its elements as nft lists them, sorted.
    pub elements: Vec<String>,
}

/// Why the live table's JSON could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read nft's JSON listing of table inet kld: {0}")]
pub struct ReadError(#[from] serde_json::Error);

impl LiveTable {
    /// Reads `nft -j list table inet kld` output.
    pub fn parse(json: &str) -> Result<LiveTable, ReadError> {
        let doc: Nftables<'_> = serde_json::from_str(json)?;
        let mut table = LiveTable::default();
        for object in doc.objects.iter() {
            let NfObject::ListObject(object) = object else {
                continue;
            };
            match object {
                NfListObject::Chain(c) if c.table == TABLE => {
                    let base = match (&c._type, &c.hook) {
                        (Some(kind), Some(hook)) => Some((
                            chain_type(kind).to_owned(),
                            hook_name(hook).to_owned(),
                            match c.policy {
                                Some(NfChainPolicy::Drop) => "drop",
                                _ => "accept",
                            }
                            .to_owned(),
                        )),
                        _ => None,
                    };
                    table.chains.push(LiveChain {
                        name: c.name.to_string(),
                        base,
                        rules: Vec::new(),
                    });
                }
                NfListObject::Rule(r) if r.table == TABLE => {
                    let rule = LiveRule {
                        comment: r.comment.as_ref().map(ToString::to_string),
                        handle: r.handle,
                        verdict: r.expr.last().map_or("other".to_owned(), verdict),
                        packets: r.expr.iter().find_map(|s| match s {
                            Statement::Counter(Counter::Anonymous(Some(c))) => {
                                Some(c.packets.unwrap_or(0) as u64)
                            }
                            _ => None,
                        }),
                    };
                    if let Some(chain) = table.chains.iter_mut().find(|c| c.name == r.chain) {
                        chain.rules.push(rule);
                    }
                }
                NfListObject::Set(s) if s.table == TABLE => {
                    let kind = match &s.set_type {
                        SetTypeValue::Single(t) => type_name(t),
                        SetTypeValue::Concatenated(ts) => {
                            ts.iter().map(type_name).collect::<Vec<_>>().join(" . ")
                        }
                    };
                    let mut elements: Vec<String> = s
                        .elem
                        .iter()
                        .flat_map(|e| e.iter())
                        .filter_map(element)
                        .collect();
                    elements.sort();
                    table.sets.push(LiveSet {
                        name: s.name.to_string(),
                        kind,
                        elements,
                    });
                }
                _ => {}
            }
        }
        Ok(table)
    }

    /// The chain called `name`.
    pub fn chain(&self, name: &str) -> Option<&LiveChain> {
        self.chains.iter().find(|c| c.name == name)
    }

    /// The set called `name`.
    pub fn set(&self, name: &str) -> Option<&LiveSet> {
        self.sets.iter().find(|s| s.name == name)
    }

    /// Every way this table differs from `expected`; empty when it holds
    /// exactly the chains, rules (by their comments, in order, with their
    /// verdicts), policies and sets meant. Elements of dynamic sets are not
    /// compared.
    pub fn differences(&self, expected: &Expected) -> Vec<Difference> {
        let mut out = Vec::new();
        for chain in &expected.chains {
            let Some(live) = self.chain(&chain.name) else {
                out.push(Difference::ChainAdded(chain.name.clone()));
                continue;
            };
            if live.base != chain.base {
                out.push(Difference::ChainChanged {
                    chain: chain.name.clone(),
                    from: describe_base(&live.base),
                    to: describe_base(&chain.base),
                });
            }
            let meant: HashSet<&str> = chain.rules.iter().map(|r| r.comment.as_str()).collect();
            let by_comment: HashMap<&str, &LiveRule> = live
                .rules
                .iter()
                .filter_map(|r| r.comment.as_deref().map(|c| (c, r)))
                .collect();
            for (i, r) in live.rules.iter().enumerate() {
                match &r.comment {
                    Some(c) if meant.contains(c.as_str()) => {}
                    Some(c) => out.push(Difference::RuleRemoved {
                        chain: chain.name.clone(),
                        comment: c.clone(),
                    }),
                    None => out.push(Difference::Foreign {
                        chain: chain.name.clone(),
                        handle: r.handle,
                        position: i + 1,
                    }),
                }
            }
            for r in &chain.rules {
                match by_comment.get(r.comment.as_str()) {
                    None => out.push(Difference::RuleAdded {
                        chain: chain.name.clone(),
                        text: r.text.clone(),
                        comment: r.comment.clone(),
                    }),
                    Some(l) if l.verdict != r.verdict => out.push(Difference::VerdictChanged {
                        chain: chain.name.clone(),
                        comment: r.comment.clone(),
                        live: l.verdict.clone(),
                        meant: r.verdict.clone(),
                    }),
                    Some(_) => {}
                }
            }
            let common_live: Vec<&str> = live
                .rules
                .iter()
                .filter_map(|r| r.comment.as_deref())
                .filter(|c| meant.contains(c))
                .collect();
            let common_meant: Vec<&str> = chain
                .rules
                .iter()
                .map(|r| r.comment.as_str())
                .filter(|c| by_comment.contains_key(c))
                .collect();
            if common_live != common_meant {
                out.push(Difference::Reordered(chain.name.clone()));
            }
        }
        for live in &self.chains {
            if !expected.chains.iter().any(|c| c.name == live.name) {
                out.push(Difference::ChainRemoved(live.name.clone()));
            }
        }
        for set in &expected.sets {
            match self.set(&set.name) {
                None => out.push(Difference::SetAdded(set.name.clone())),
                Some(live) if live.kind != set.kind => out.push(Difference::SetChanged {
                    set: set.name.clone(),
                    from: live.kind.clone(),
                    to: set.kind.clone(),
                }),
                Some(live) => {
                    if let Some(elements) = &set.elements {
                        for e in elements.iter().filter(|e| !live.elements.contains(e)) {
                            out.push(Difference::ElementAdded {
                                set: set.name.clone(),
                                element: e.clone(),
                            });
                        }
                        for e in live.elements.iter().filter(|e| !elements.contains(e)) {
                            out.push(Difference::ElementRemoved {
                                set: set.name.clone(),
                                element: e.clone(),
                            });
                        }
                    }
                }
            }
        }
        for live in &self.sets {
            if !expected.sets.iter().any(|s| s.name == live.name) {
                out.push(Difference::SetRemoved(live.name.clone()));
            }
        }
        out
    }
}

/// One way the live table differs from a ruleset, said as what applying the
/// ruleset would do.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Difference {
    /// Table `inet kld` does not exist: everything would be added.
    TableAdded,
    /// A chain would be added.
    ChainAdded(String),
    /// A chain would be removed.
    ChainRemoved(String),
    /// A base chain's type, hook or policy would change.
    ChainChanged {
        /// The chain.
        chain: String,
        /// What it is now.
        from: String,
        /// What it would be.
        to: String,
    },
    /// A rule would be added.
    RuleAdded {
        /// Its chain.
        chain: String,
        /// The rule.
        text: String,
        /// Its comment.
        comment: String,
    },
    /// A rule would be removed.
    RuleRemoved {
        /// Its chain.
        chain: String,
        /// Its comment, which describes it.
        comment: String,
    },
    /// A rule has kld's comment but not the verdict meant (edited by hand).
    VerdictChanged {
        /// Its chain.
        chain: String,
        /// Its comment.
        comment: String,
        /// Its verdict now.
        live: String,
        /// The verdict meant.
        meant: String,
    },
    /// A rule without kld's comment (added by hand) would be removed.
    Foreign {
        /// Its chain.
        chain: String,
        /// Its handle.
        handle: Option<u32>,
        /// Its position in the chain (from 1).
        position: usize,
    },
    /// The rules kld keeps would come in another order.
    Reordered(String),
    /// A set would be added.
    SetAdded(String),
    /// A set would be removed.
    SetRemoved(String),
    /// A set's type would change.
    SetChanged {
        /// The set.
        set: String,
        /// Its type now.
        from: String,
        /// The type it would have.
        to: String,
    },
    /// An element the file lists is not in the live set.
    ElementAdded {
        /// The set.
        set: String,
        /// The element.
        element: String,
    },
    /// An element of the live set (added live, e.g. `knft set add`) that
    /// the file does not list.
    ElementRemoved {
        /// The set.
        set: String,
        /// The element.
        element: String,
    },
}

impl std::fmt::Display for Difference {
    /// One line: `+` for what would be added, `-` removed, `~` changed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Difference::TableAdded => write!(f, "+ table inet kld (it does not exist yet)"),
            Difference::ChainAdded(c) => write!(f, "+ chain {c}"),
            Difference::ChainRemoved(c) => write!(f, "- chain {c}"),
            Difference::ChainChanged { chain, from, to } => {
                write!(f, "~ chain {chain}: {from} -> {to}")
            }
            Difference::RuleAdded { chain, text, .. } => write!(f, "+ {chain}: {text}"),
            Difference::RuleRemoved { chain, comment } => write!(f, "- {chain}: {comment}"),
            Difference::VerdictChanged {
                chain,
                comment,
                live,
                meant,
            } => write!(f, "~ {chain}: {comment}: {live} -> {meant}"),
            Difference::Foreign {
                chain,
                handle,
                position,
            } => {
                let handle = handle.map_or(String::new(), |h| format!(", handle {h}"));
                write!(f, "- {chain}: rule {position} made outside kld{handle}")
            }
            Difference::Reordered(c) => write!(f, "~ chain {c}: rules reordered"),
            Difference::SetAdded(s) => write!(f, "+ set {s}"),
            Difference::SetRemoved(s) => write!(f, "- set {s}"),
            Difference::SetChanged { set, from, to } => {
                write!(f, "~ set {set}: type {from} -> {to}")
            }
            Difference::ElementAdded { set, element } => {
                write!(f, "+ set {set}: element {element}")
            }
            Difference::ElementRemoved { set, element } => {
                write!(f, "- set {set}: element {element} (added live)")
            }
        }
    }
}

/// A set type as nft names it (`ipv4_addr`).
fn type_name(t: &nftables::schema::SetType) -> String {
    match serde_json::to_value(t) {
        Ok(serde_json::Value::String(s)) => s,
        _ => format!("{t:?}"),
    }
}

fn describe_base(base: &Option<(String, String, String)>) -> String {
    match base {
        Some((kind, hook, policy)) => format!("type {kind} hook {hook} policy {policy}"),
        None => "regular chain".to_owned(),
    }
}

fn chain_type(t: &NfChainType) -> &'static str {
    match t {
        NfChainType::Filter => "filter",
        NfChainType::Route => "route",
        NfChainType::NAT => "nat",
    }
}

fn hook_name(h: &NfHook) -> &'static str {
    match h {
        NfHook::Ingress => "ingress",
        NfHook::Prerouting => "prerouting",
        NfHook::Forward => "forward",
        NfHook::Input => "input",
        NfHook::Output => "output",
        NfHook::Postrouting => "postrouting",
        NfHook::Egress => "egress",
    }
}

fn verdict(s: &Statement<'_>) -> String {
    match s {
        Statement::Accept(_) => "accept".into(),
        Statement::Drop(_) => "drop".into(),
        Statement::Jump(t) => format!("jump {}", t.target),
        Statement::Goto(t) => format!("goto {}", t.target),
        Statement::Return(_) => "return".into(),
        Statement::DNAT(_) => "dnat".into(),
        Statement::SNAT(_) => "snat".into(),
        Statement::Masquerade(_) => "masquerade".into(),
        Statement::Log(_) => "log".into(),
        Statement::Reject(_) => "reject".into(),
        _ => "other".into(),
    }
}

/// A set element as nft lists it in text: `10.0.0.2`, `10.1.0.0/16`.
fn element(e: &Expression<'_>) -> Option<String> {
    match e {
        Expression::String(s) => Some(s.to_string()),
        Expression::Named(NamedExpression::Prefix(p)) => {
            element(&p.addr).map(|a| format!("{a}/{}", p.len))
        }
        Expression::Named(NamedExpression::Elem(el)) => element(&el.val),
        Expression::Range(r) => {
            let [a, b] = &r.range;
            Some(format!("{}-{}", element(a)?, element(b)?))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{render, ZoneFile};

    const FILE: &str = include_str!("../tests/fixtures/everything.toml");
    const LISTED: &str = include_str!("../tests/fixtures/everything-nft-1.0.6.json");

    /// nft 1.0.6's listing of what the file renders to reads back as
    /// exactly what was meant.
    #[test]
    fn real_listing_matches_the_rendering() {
        let ruleset = render(&ZoneFile::parse(FILE, "everything.toml").unwrap());
        let live = LiveTable::parse(LISTED).unwrap();
        assert_eq!(live.differences(ruleset.expected()), vec![]);
        assert_eq!(
            live.set("lb_pool").unwrap().elements,
            ["10.20.0.2", "10.20.1.0/24"]
        );
        let public = live.chain("in_public").unwrap();
        assert_eq!(public.rules.last().unwrap().packets, Some(0));
        assert_eq!(
            live.chain("input").unwrap().base.as_ref().unwrap().2,
            "drop"
        );
    }

    #[test]
    fn differences_are_reported() {
        let file = FILE.replace("service = \"ssh\"", "tcp = 2222");
        let ruleset = render(&ZoneFile::parse(&file, "x.toml").unwrap());
        let live = LiveTable::parse(LISTED).unwrap();
        let d: Vec<String> = live
            .differences(ruleset.expected())
            .iter()
            .map(ToString::to_string)
            .collect();
        assert!(
            d.iter()
                .any(|l| l.starts_with("+ in_mgmt: tcp dport { 2222 } accept")),
            "{d:?}"
        );
        assert!(
            d.iter().any(|l| l.starts_with("- in_mgmt: mgmt: ssh")),
            "{d:?}"
        );
        assert_eq!(d.len(), 2, "{d:?}");
    }
}
