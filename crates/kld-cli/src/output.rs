//! Listing output in the four modes every kld listing offers: a human table
//! (default), `-H` (no header, tab-separated), `-p` (exact numbers) and
//! `--json` (versioned with `apiVersion` and `kind`).

use std::io::Write;

use serde_json::{Map, Value};

/// The `apiVersion` of every JSON document kld prints.
pub const API_VERSION: &str = "kld/v1";

/// The output flags shared by every listing command.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct OutputArgs {
    /// Scripted mode: no header, fields separated by a tab.
    #[arg(short = 'H')]
    pub scripted: bool,
    /// Exact numbers (bytes, seconds since the epoch) instead of rounded ones.
    #[arg(short = 'p')]
    pub parsable: bool,
    /// JSON: {"apiVersion": "kld/v1", "kind": ..., "items": [...]}.
    #[arg(long, conflicts_with_all = ["scripted", "parsable"])]
    pub json: bool,
}

/// One value of a table, in its human, exact and JSON forms.
#[derive(Debug, Clone)]
pub struct Cell {
    human: String,
    exact: String,
    json: Value,
}

impl Cell {
    /// Text, the same in every mode.
    pub fn text(s: impl Into<String>) -> Cell {
        let s = s.into();
        Cell {
            human: s.clone(),
            exact: s.clone(),
            json: Value::String(s),
        }
    }

    /// A byte count: `1.5G` for people, exact otherwise.
    pub fn bytes(n: u64) -> Cell {
        Cell {
            human: human_bytes(n),
            exact: n.to_string(),
            json: Value::from(n),
        }
    }

    /// A plain number.
    pub fn number(n: u64) -> Cell {
        Cell {
            human: n.to_string(),
            exact: n.to_string(),
            json: Value::from(n),
        }
    }

    /// A percentage: `42%` for people, `42` otherwise.
    pub fn percent(n: u64) -> Cell {
        Cell {
            human: format!("{n}%"),
            exact: n.to_string(),
            json: Value::from(n),
        }
    }

    /// A ratio such as a compression ratio: `1.52x`, `1.52` exact.
    pub fn ratio(r: f64) -> Cell {
        Cell {
            human: format!("{r:.2}x"),
            exact: format!("{r:.2}"),
            json: serde_json::Number::from_f64(r)
                .map(Value::Number)
                .unwrap_or(Value::Null),
        }
    }

    /// A moment: an ISO date in UTC for people, seconds since the epoch
    /// otherwise.
    pub fn time(epoch: u64) -> Cell {
        Cell {
            human: crate::time::iso_utc(epoch),
            exact: epoch.to_string(),
            json: Value::from(epoch),
        }
    }

    /// Nothing (`-` in tables, `null` in JSON).
    pub fn none() -> Cell {
        Cell {
            human: "-".into(),
            exact: "-".into(),
            json: Value::Null,
        }
    }

    /// A list of names: comma-separated in tables, an array in JSON.
    pub fn list(items: &[String]) -> Cell {
        if items.is_empty() {
            return Cell {
                json: Value::Array(Vec::new()),
                ..Cell::none()
            };
        }
        Cell {
            human: items.join(","),
            exact: items.join(","),
            json: Value::Array(items.iter().cloned().map(Value::String).collect()),
        }
    }
}

/// A table: columns (header for people, field name for JSON) and rows.
#[derive(Debug, Clone)]
pub struct Table {
    kind: &'static str,
    columns: Vec<(&'static str, &'static str)>,
    rows: Vec<Vec<Cell>>,
}

impl Table {
    /// A table whose JSON form has `kind`, with `(HEADER, json_field)`
    /// columns.
    pub fn new(kind: &'static str, columns: &[(&'static str, &'static str)]) -> Table {
        Table {
            kind,
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (as many cells as columns).
    pub fn push(&mut self, row: Vec<Cell>) {
        debug_assert_eq!(row.len(), self.columns.len());
        self.rows.push(row);
    }

    /// The number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Renders the table in the mode `args` asks for.
    pub fn render(&self, args: &OutputArgs) -> String {
        if args.json {
            let items: Vec<Value> = self
                .rows
                .iter()
                .map(|row| {
                    let map: Map<String, Value> = self
                        .columns
                        .iter()
                        .zip(row)
                        .map(|((_, field), cell)| ((*field).to_owned(), cell.json.clone()))
                        .collect();
                    Value::Object(map)
                })
                .collect();
            let doc =
                serde_json::json!({ "apiVersion": API_VERSION, "kind": self.kind, "items": items });
            return serde_json::to_string_pretty(&doc).expect("JSON values serialise") + "\n";
        }
        let cell = |c: &Cell| {
            if args.parsable {
                c.exact.clone()
            } else {
                c.human.clone()
            }
        };
        let mut out = String::new();
        if args.scripted {
            for row in &self.rows {
                out.push_str(&row.iter().map(cell).collect::<Vec<_>>().join("\t"));
                out.push('\n');
            }
            return out;
        }
        let mut lines: Vec<Vec<String>> =
            vec![self.columns.iter().map(|(h, _)| (*h).to_owned()).collect()];
        lines.extend(self.rows.iter().map(|row| row.iter().map(cell).collect()));
        let widths: Vec<usize> = (0..self.columns.len())
            .map(|i| {
                lines
                    .iter()
                    .map(|l| l[i].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for line in lines {
            let mut text = String::new();
            for (i, value) in line.iter().enumerate() {
                if i + 1 == line.len() {
                    text.push_str(value);
                } else {
                    text.push_str(&format!("{value:<w$}  ", w = widths[i]));
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
        out
    }

    /// Prints the table to standard output.
    pub fn print(&self, args: &OutputArgs) {
        let _ = std::io::stdout().write_all(self.render(args).as_bytes());
    }
}

/// Rounds a byte count the way `zfs list` does: three significant digits
/// and a binary suffix (`96K`, `1.50G`, `831M`).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 7] = ["B", "K", "M", "G", "T", "P", "E"];
    if n < 1024 {
        return format!("{n}B");
    }
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    let text = if value < 10.0 {
        format!("{value:.2}")
    } else if value < 100.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.0}")
    };
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    };
    format!("{text}{}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Table {
        let mut t = Table::new("Thing", &[("NAME", "name"), ("USED", "used")]);
        t.push(vec![Cell::text("tank/a b"), Cell::bytes(1536)]);
        t.push(vec![Cell::text("tank"), Cell::none()]);
        t
    }

    #[test]
    fn modes() {
        let t = sample();
        assert_eq!(
            t.render(&OutputArgs::default()),
            "NAME      USED\ntank/a b  1.5K\ntank      -\n"
        );
        let scripted = OutputArgs {
            scripted: true,
            ..Default::default()
        };
        assert_eq!(t.render(&scripted), "tank/a b\t1.5K\ntank\t-\n");
        let exact = OutputArgs {
            scripted: true,
            parsable: true,
            ..Default::default()
        };
        assert_eq!(t.render(&exact), "tank/a b\t1536\ntank\t-\n");
        let json: Value = serde_json::from_str(&t.render(&OutputArgs {
            json: true,
            ..Default::default()
        }))
        .unwrap();
        assert_eq!(json["apiVersion"], "kld/v1");
        assert_eq!(json["kind"], "Thing");
        assert_eq!(json["items"][0]["used"], 1536);
        assert_eq!(json["items"][1]["used"], Value::Null);
    }

    #[test]
    fn byte_rounding() {
        assert_eq!(human_bytes(0), "0B");
        assert_eq!(human_bytes(98304), "96K");
        assert_eq!(human_bytes(1536), "1.5K");
        assert_eq!(human_bytes(831 << 20), "831M");
        assert_eq!(human_bytes(3 << 29), "1.5G");
        assert_eq!(human_bytes(u64::MAX), "16E");
    }
}
