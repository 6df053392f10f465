//! A [`Report`] for people (one summary line, then what is not OK), as JSON
//! (`apiVersion` `kld/v1`, kind `HealthReport`, described by the schema in
//! `crates/kld-cli/schema/kst-report.schema.json`), and in Prometheus' text
//! exposition format (for node_exporter's textfile collector).

use std::collections::BTreeMap;
use std::fmt::Write;

use serde_json::{json, Map, Value};

use super::{Measurement, Report, Status};
use crate::output::API_VERSION;

/// The JSON Schema of [`json()`]'s document, as shipped in
/// `crates/kld-cli/schema/` (and installed with the package).
pub const SCHEMA: &str = include_str!("../../schema/kst-report.schema.json");

/// The human report: `pool: ONLINE  scrub: clean  ...`, then a block for
/// each check that is not OK, then the skipped checks.
pub fn human(report: &Report) -> String {
    let mut out = report
        .checks
        .iter()
        .map(|c| format!("{}: {}", c.name.label(), c.summary))
        .collect::<Vec<_>>()
        .join("  ");
    if report.checks.is_empty() {
        out.push_str("no check ran");
    }
    out.push('\n');
    for check in report.checks.iter().filter(|c| c.status != Status::Ok) {
        let _ = writeln!(out, "{} {}: {}", check.status, check.name, check.summary);
        for detail in &check.details {
            let _ = writeln!(out, "  {detail}");
        }
    }
    for skipped in &report.skipped {
        let _ = writeln!(out, "skipped {}: {}", skipped.name, skipped.reason);
    }
    out
}

/// The JSON document.
pub fn json(report: &Report) -> Value {
    let checks: Vec<Value> = report
        .checks
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "status": c.status,
                "exitCode": c.status.code(),
                "summary": c.summary,
                "details": c.details,
                "values": c.values.iter().map(measurement_json).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "apiVersion": API_VERSION,
        "kind": "HealthReport",
        "status": report.status,
        "exitCode": report.status.code(),
        "time": report.time,
        "checks": checks,
        "skipped": report.skipped,
    })
}

fn measurement_json(m: &Measurement) -> Value {
    let labels: Map<String, Value> = m
        .labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::from(v.as_str())))
        .collect();
    json!({"metric": m.metric, "labels": labels, "value": m.value})
}

/// The Prometheus text: `kld_check_status{check="..."}` (0 OK, 1 WARNING,
/// 2 CRITICAL, 3 UNKNOWN) for every check that ran, `kld_check_skipped` for
/// the others, `kld_health_status` for the whole report, when it was made,
/// and every measured value; each metric family once, with HELP and TYPE.
pub fn prometheus(report: &Report) -> String {
    let mut families: BTreeMap<&'static str, (&'static str, Vec<String>)> = BTreeMap::new();
    let mut add = |m: &Measurement| {
        let family = families.entry(m.metric).or_insert((m.help, Vec::new()));
        family.1.push(sample(m));
    };
    add(&Measurement::new(
        "kld_health_status",
        "The worst status of kst's checks: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
        f64::from(report.status.code()),
    ));
    add(&Measurement::new(
        "kld_health_timestamp_seconds",
        "When kst made this report, seconds since the epoch.",
        report.time as f64,
    ));
    for check in &report.checks {
        add(&Measurement::new(
            "kld_check_status",
            "Status of a kst check: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
            f64::from(check.status.code()),
        )
        .label("check", check.name.as_str()));
        for m in &check.values {
            add(m);
        }
    }
    for skipped in &report.skipped {
        add(&Measurement::new(
            "kld_check_skipped",
            "A kst check that did not run because its data source is missing here.",
            1.0,
        )
        .label("check", skipped.name.as_str()));
    }
    let mut out = String::new();
    for (name, (help, samples)) in families {
        let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(out, "# TYPE {name} gauge");
        for s in samples {
            out.push_str(&s);
        }
    }
    out
}

fn sample(m: &Measurement) -> String {
    let labels = if m.labels.is_empty() {
        String::new()
    } else {
        let inner: Vec<String> = m
            .labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
            .collect();
        format!("{{{}}}", inner.join(","))
    };
    format!("{}{labels} {}\n", m.metric, number(m.value))
}

/// A sample value: integers without a fraction, others as Rust prints them
/// (both are valid Go `ParseFloat` input).
fn number(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

/// Label values escape backslash, double quote and newline.
fn escape_label(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

/// HELP text escapes backslash and newline.
fn escape_help(v: &str) -> String {
    v.replace('\\', r"\\").replace('\n', r"\n")
}

#[cfg(test)]
mod tests {
    use super::super::{CheckName, CheckResult, Skipped};
    use super::*;
    use proptest::prelude::*;

    fn report() -> Report {
        let mut pools = CheckResult::new(CheckName::Pools);
        pools.finding(Status::Warning, "tank is DEGRADED");
        pools.summary = "tank DEGRADED".into();
        pools
            .values
            .push(Measurement::new("kld_pool_online", "Online.", 0.0).label("pool", "tank"));
        let mut scrub = CheckResult::new(CheckName::Scrub);
        scrub.summary = "clean".into();
        Report {
            status: Status::Warning,
            checks: vec![pools, scrub],
            skipped: vec![Skipped {
                name: CheckName::Disks,
                reason: "smartctl is not installed".into(),
            }],
            time: 1_800_000_000,
        }
    }

    #[test]
    fn human_summary_line_then_problems() {
        assert_eq!(
            human(&report()),
            "pool: tank DEGRADED  scrub: clean\n\
             WARNING pools: tank DEGRADED\n  tank is DEGRADED\n\
             skipped disks: smartctl is not installed\n"
        );
    }

    #[test]
    fn json_document() {
        let doc = json(&report());
        assert_eq!(doc["apiVersion"], "kld/v1");
        assert_eq!(doc["status"], "WARNING");
        assert_eq!(doc["exitCode"], 1);
        assert_eq!(doc["checks"][0]["name"], "pools");
        assert_eq!(doc["checks"][0]["values"][0]["labels"]["pool"], "tank");
        assert_eq!(doc["skipped"][0]["name"], "disks");
    }

    #[test]
    fn json_follows_the_shipped_schema() {
        let schema: Value = serde_json::from_str(SCHEMA).unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap();
        let doc = json(&report());
        let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{errors:?}");
        // The schema is strict enough to catch a wrong document.
        let mut wrong = doc.clone();
        wrong["checks"][0]["status"] = Value::from("FINE");
        assert!(!validator.is_valid(&wrong));
        let mut wrong = doc;
        wrong["checks"][0]["values"][0]["labels"]["pool"] = Value::from(1);
        assert!(!validator.is_valid(&wrong));
    }

    #[test]
    fn prometheus_families_once_each() {
        let text = prometheus(&report());
        assert_eq!(text.matches("# TYPE kld_check_status gauge").count(), 1);
        assert!(text.contains("kld_check_status{check=\"pools\"} 1\n"));
        assert!(text.contains("kld_check_status{check=\"scrub\"} 0\n"));
        assert!(text.contains("kld_pool_online{pool=\"tank\"} 0\n"));
        assert!(text.contains("kld_check_skipped{check=\"disks\"} 1\n"));
        assert!(text.contains("kld_health_status 1\n"));
    }

    #[test]
    fn numbers_and_escapes() {
        assert_eq!(number(3.0), "3");
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(f64::INFINITY), "+Inf");
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    proptest! {
        #[test]
        fn label_values_survive_escaping(v in "\\PC{0,40}") {
            // Undo the escaping the way the exposition format defines it.
            let escaped = escape_label(&v);
            let mut back = String::new();
            let mut chars = escaped.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    match chars.next() {
                        Some('n') => back.push('\n'),
                        Some(other) => back.push(other),
                        None => prop_assert!(false, "dangling backslash"),
                    }
                } else {
                    prop_assert!(c != '"' && c != '\n');
                    back.push(c);
                }
            }
            prop_assert_eq!(back, v);
        }
    }
}
