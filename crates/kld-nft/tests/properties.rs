//! Property tests: the zone file parser never panics, whatever it is given,
//! and every valid zone file renders to a ruleset that `nft -c` (the real
//! nft, checking against this machine's kernel) accepts.

use kld_nft::{render, Nft, ZoneFile};
use proptest::prelude::*;

const EXAMPLE: &str = include_str!("../examples/web-server.toml");
const EVERYTHING: &str = include_str!("fixtures/everything.toml");

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Arbitrary text: an error or a model, never a panic.
    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
        let _ = ZoneFile::parse(&text, "fuzz.toml");
    }

    /// Real zone files with bytes changed, cut or repeated: an error or a
    /// model, never a panic; and any error names a line and column inside
    /// the text.
    #[test]
    fn mutated_files_never_panic(
        which in 0..2usize,
        at in 0..2000usize,
        len in 0..40usize,
        insert in "[\\[\\]\"=,.a-z0-9*/ \n-]{0,12}",
    ) {
        let base = if which == 0 { EXAMPLE } else { EVERYTHING };
        let mut bytes = base.as_bytes().to_vec();
        let at = at % (bytes.len() + 1);
        let end = (at + len).min(bytes.len());
        bytes.splice(at..end, insert.bytes());
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if let Err(e) = ZoneFile::parse(&text, "m.toml") {
            let lines = text.lines().count().max(1);
            for p in &e.problems {
                prop_assert!(p.line >= 1 && p.line <= lines + 1, "{p:?}");
                prop_assert!(p.column >= 1);
            }
        }
    }
}

/// One generated rule: a protocol choice, a port offset, a range length, an
/// optional rate and connection limit, and whether it has sources.
#[derive(Debug, Clone)]
struct GenRule {
    proto: u8,
    port: u16,
    span: u16,
    rate: Option<u32>,
    connlimit: Option<u32>,
    from: bool,
}

/// One generated zone: its interface, whether it is bound to sources, and
/// its rules.
#[derive(Debug, Clone)]
struct GenZone {
    wildcard: bool,
    sources: bool,
    masquerade: bool,
    log: u8,
    rules: Vec<GenRule>,
}

fn zone() -> impl Strategy<Value = GenZone> {
    (
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        0..3u8,
        prop::collection::vec(
            (
                0..5u8,
                1..900u16,
                0..50u16,
                prop::option::of(1..1000u32),
                prop::option::of(1..100u32),
                any::<bool>(),
            )
                .prop_map(|(proto, port, span, rate, connlimit, from)| GenRule {
                    proto,
                    port,
                    span,
                    rate,
                    connlimit,
                    from,
                }),
            0..5,
        ),
    )
        .prop_map(|(wildcard, sources, masquerade, log, rules)| GenZone {
            wildcard,
            sources,
            masquerade,
            log,
            rules,
        })
}

/// Writes generated zones as a zone file. Each rule gets ports of its own
/// (rule j of a zone uses ports from 1000 * (j + 1)), so that no rule hides
/// another and the file is valid by construction.
fn zone_file(zones: &[GenZone], forward: bool, port_forward: bool, set: bool) -> String {
    let mut t = String::new();
    if set {
        t.push_str(
            "[sets.pool]\ntype = \"ipv4\"\nelements = [\"192.0.2.1\", \"198.51.100.0/24\"]\n\n",
        );
    }
    for (i, z) in zones.iter().enumerate() {
        t.push_str(&format!("[zones.z{i}]\n"));
        let iface = if z.wildcard {
            format!("wg{i}x*")
        } else {
            format!("eth{i}")
        };
        t.push_str(&format!("interfaces = [\"{iface}\"]\n"));
        if z.sources {
            t.push_str(&format!(
                "sources = [\"10.{i}.0.0/16\", \"fd00:{i}::/32\"]\n"
            ));
        }
        if z.masquerade {
            t.push_str("masquerade = true\n");
        }
        match z.log {
            0 => t.push_str("log_drops = false\n"),
            1 => t.push_str("log_drops = \"3/second\"\n"),
            _ => {}
        }
        if forward && i > 0 {
            t.push_str("forward_to = [\"z0\"]\n");
        }
        for (j, r) in z.rules.iter().enumerate() {
            let GenRule {
                proto,
                port,
                span,
                rate,
                connlimit,
                from,
            } = r;
            let first = 1000 * (j as u32 + 1) + u32::from(*port);
            let last = first + u32::from(*span);
            t.push_str(&format!("[[zones.z{i}.allow]]\n"));
            match proto {
                0 => t.push_str(&format!("tcp = {first}\n")),
                1 => t.push_str(&format!("udp = \"{first}-{last}\"\n")),
                2 => t.push_str(&format!(
                    "tcp = [{first}, \"{}-{}\"]\nudp = {first}\n",
                    last + 1,
                    last + 2
                )),
                3 if j == 0 => t.push_str(
                    "icmp = [\"echo-request\"]\nicmpv6 = [\"echo-request\", \"echo-reply\"]\n",
                ),
                _ => t.push_str(&format!("tcp = {first}\n")),
            }
            if *from && !z.sources {
                t.push_str("from = [\"203.0.113.0/24\", \"2001:db8::/32\"]\n");
                if set {
                    t.push_str("from_set = [\"pool\"]\n");
                }
            }
            if let Some(r) = rate {
                t.push_str(&format!("rate = \"{r}/minute\"\nburst = {}\n", r % 7 + 1));
            }
            if let Some(c) = connlimit {
                t.push_str(&format!("connlimit = {c}\n"));
            }
        }
        t.push('\n');
    }
    if port_forward {
        t.push_str("[[port_forward]]\nzone = \"z0\"\nport = 8080\nto = \"10.0.0.9:80\"\n");
        t.push_str(
            "[[port_forward]]\nzone = \"z0\"\nproto = \"udp\"\nport = 5353\nto = \"fd00::9\"\n",
        );
    }
    t
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Generated valid zone files always render to rulesets nft accepts.
    #[test]
    fn valid_files_render_to_rulesets_nft_accepts(
        zones in prop::collection::vec(zone(), 1..4),
        forward in any::<bool>(),
        port_forward in any::<bool>(),
        set in any::<bool>(),
    ) {
        let text = zone_file(&zones, forward, port_forward, set);
        let file = ZoneFile::parse(&text, "generated.toml")
            .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        let ruleset = render(&file);
        if let Err(e) = Nft::new().check(ruleset.text()) {
            return Err(TestCaseError::fail(format!("nft -c refused:\n{e}\n--- zone file\n{text}\n--- ruleset\n{}", ruleset.text())));
        }
    }
}

/// The shipped examples are valid and accepted too.
#[test]
fn shipped_files_are_accepted_by_nft() {
    for (name, text) in [
        ("web-server.toml", EXAMPLE),
        ("everything.toml", EVERYTHING),
    ] {
        let file = ZoneFile::parse(text, name).unwrap();
        Nft::new().check(render(&file).text()).unwrap();
    }
}
