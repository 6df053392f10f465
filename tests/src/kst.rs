//! Checking kst's outputs from a VM or a booted system: scenarios print each
//! output between `=== kst CASE FORMAT exit=N` and `=== end` lines; these
//! helpers collect them and check every JSON document against the schema
//! kld-cli ships and every Prometheus text with `promtool check metrics`.

use kld_exec::Cmd;

/// One output kst printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// The case it belongs to (`healthy`, `degraded`, ...).
    pub case: String,
    /// `human`, `json` or `prometheus`.
    pub format: String,
    /// kst's exit status.
    pub exit: i32,
    /// What it printed.
    pub text: String,
}

/// The outputs marked in `log`, in order.
pub fn outputs(log: &str) -> Vec<Output> {
    let mut found = Vec::new();
    let mut lines = log.lines();
    while let Some(line) = lines.next() {
        let Some(head) = line.strip_prefix("=== kst ") else {
            continue;
        };
        let fields: Vec<&str> = head.split_whitespace().collect();
        let [case, format, exit] = fields[..] else {
            continue;
        };
        let Some(exit) = exit.strip_prefix("exit=").and_then(|e| e.parse().ok()) else {
            continue;
        };
        let mut text = String::new();
        for body in lines.by_ref() {
            if body == "=== end" {
                break;
            }
            text.push_str(body);
            text.push('\n');
        }
        found.push(Output {
            case: case.to_owned(),
            format: format.to_owned(),
            exit,
            text,
        });
    }
    found
}

/// The JSON Schema of `kst --json`, as kld-cli ships it.
pub const SCHEMA: &str = include_str!("../../crates/kld-cli/schema/kst-report.schema.json");

/// Checks a `kst --json` document against [`SCHEMA`] and that its
/// `exitCode` is `exit`; returns the document.
pub fn check_json(text: &str, exit: i32) -> Result<serde_json::Value, String> {
    let doc: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not JSON ({e}):\n{text}"))?;
    let schema: serde_json::Value = serde_json::from_str(SCHEMA).expect("the schema is JSON");
    let validator = jsonschema::validator_for(&schema).map_err(|e| e.to_string())?;
    let errors: Vec<String> = validator
        .iter_errors(&doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    if !errors.is_empty() {
        return Err(format!("{}:\n{text}", errors.join("\n")));
    }
    if doc["exitCode"] != exit {
        return Err(format!("exitCode is not {exit}:\n{text}"));
    }
    Ok(doc)
}

/// Runs `promtool check metrics` (Debian's prometheus package) on a
/// Prometheus text; its lint findings are errors too.
pub fn promtool(text: &str) -> Result<(), String> {
    Cmd::new("promtool")
        .args(["check", "metrics"])
        .stdin_bytes(text.as_bytes().to_vec())
        .run()
        .map(drop)
        .map_err(|e| format!("{e}\n{text}"))
}

/// Checks every output in `log` (JSON against the schema, Prometheus with
/// promtool, exit statuses consistent between formats of a case) and
/// returns them.
pub fn check_all(log: &str) -> Result<Vec<Output>, String> {
    let all = outputs(log);
    if all.is_empty() {
        return Err(format!("no kst output in:\n{log}"));
    }
    for out in &all {
        let what = format!("kst {} {}", out.case, out.format);
        match out.format.as_str() {
            "json" => check_json(&out.text, out.exit).map(drop),
            "prometheus" => promtool(&out.text).and_then(|()| {
                let line = format!("kld_health_status {}\n", out.exit);
                if out.text.contains(&line) {
                    Ok(())
                } else {
                    Err(format!("no {line:?} in:\n{}", out.text))
                }
            }),
            _ => Ok(()),
        }
        .map_err(|e| format!("{what}: {e}"))?;
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marked_outputs_are_collected() {
        let log = "noise\n=== kst healthy json exit=0\n{}\n=== end\n=== kst x human exit=1\na\nb\n=== end\n";
        let all = outputs(log);
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].text, "{}\n");
        assert_eq!((all[1].case.as_str(), all[1].exit), ("x", 1));
        assert_eq!(all[1].text, "a\nb\n");
    }

    #[test]
    fn wrong_documents_are_caught() {
        assert!(check_json("{}", 0).is_err());
        assert!(check_json("not json", 0).is_err());
        let good = r#"{"apiVersion":"kld/v1","kind":"HealthReport","status":"OK","exitCode":0,
                       "time":1,"checks":[],"skipped":[]}"#;
        assert!(check_json(good, 0).is_ok());
        assert!(check_json(good, 1).is_err());
    }

    #[test]
    fn promtool_catches_bad_text() {
        assert!(promtool("# TYPE x gauge\nx 1\n").is_ok());
        assert!(promtool("x{ 1\n").is_err());
    }
}
