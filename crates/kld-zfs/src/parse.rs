//! Pure parsers for the output of `zfs list/get -H -p` and
//! `zpool list/get -H -p` and `zpool status`, as OpenZFS 2.1 prints it (no
//! JSON before 2.3). Fields are split on tabs only: values such as a
//! property's source (`inherited from rpool`) or a dataset name may hold
//! spaces.

use std::collections::BTreeMap;

/// Output that does not have the shape asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unexpected output from {program}, line {line}: {message}")]
pub struct ParseError {
    /// The program whose output it was (`zfs list`, `zpool status`, ...).
    pub program: &'static str,
    /// The 1-based line number.
    pub line: usize,
    /// What was wrong.
    pub message: String,
}

fn error(program: &'static str, line: usize, message: impl Into<String>) -> ParseError {
    ParseError {
        program,
        line,
        message: message.into(),
    }
}

/// Decodes the octal escapes ZFS and the kernel put in names and paths: a
/// backslash followed by `digits` octal digits (3 in `/proc/self/mountinfo`,
/// 4 in `zfs diff`). Anything else is kept as it is.
pub(crate) fn unescape_octal(text: &str, digits: usize) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let code = bytes
            .get(i + 1..i + 1 + digits)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        if let Some(Ok(b)) =
            code.map(|d| u8::try_from(d.iter().fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'))))
        {
            out.push(b);
            i += 1 + digits;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One line of `zfs list -H -p -o name,...` or `zpool list -H -p -o ...`:
/// the values of the columns asked for, by column name.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    values: BTreeMap<String, String>,
    line: usize,
}

impl Row {
    /// The raw text of a column (`-` where the property does not apply).
    pub fn get(&self, column: &str) -> Option<&str> {
        self.values.get(column).map(String::as_str)
    }

    /// A column holding a byte count or a number: `None` for `-`.
    pub fn number(&self, column: &str) -> Result<Option<u64>, ParseError> {
        let raw = self.require(column)?;
        if raw == "-" || raw == "none" {
            return Ok(None);
        }
        raw.parse().map(Some).map_err(|_| {
            error(
                "zfs list",
                self.line,
                format!("{column} is not a number: {raw:?}"),
            )
        })
    }

    /// A ratio such as `compressratio` (`1.52` or `1.52x`).
    pub fn ratio(&self, column: &str) -> Result<Option<f64>, ParseError> {
        let raw = self.require(column)?;
        if raw == "-" {
            return Ok(None);
        }
        raw.trim_end_matches('x').parse().map(Some).map_err(|_| {
            error(
                "zfs list",
                self.line,
                format!("{column} is not a ratio: {raw:?}"),
            )
        })
    }

    fn require(&self, column: &str) -> Result<&str, ParseError> {
        self.get(column).ok_or_else(|| {
            error(
                "zfs list",
                self.line,
                format!("no column {column:?} was asked for"),
            )
        })
    }
}

/// Parses `-H` listing output whose columns are `columns`, in order.
pub fn parse_list(
    program: &'static str,
    text: &str,
    columns: &[&str],
) -> Result<Vec<Row>, ParseError> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.len() != columns.len() {
            return Err(error(
                program,
                i + 1,
                format!(
                    "{} fields where {} were asked for",
                    fields.len(),
                    columns.len()
                ),
            ));
        }
        let values = columns
            .iter()
            .zip(fields)
            .map(|(c, f)| ((*c).to_owned(), f.to_owned()))
            .collect();
        rows.push(Row {
            values,
            line: i + 1,
        });
    }
    Ok(rows)
}

/// Where a property's value comes from, as `zfs get` reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase", tag = "kind", content = "from")]
pub enum Source {
    /// Set on this dataset.
    Local,
    /// The built-in default.
    Default,
    /// Inherited from the named dataset.
    Inherited(String),
    /// Set for this mount only.
    Temporary,
    /// Set by `zfs receive`.
    Received,
    /// A read-only statistic (`-`).
    None,
}

impl Source {
    fn parse(text: &str) -> Option<Source> {
        Some(match text {
            "local" => Source::Local,
            "default" => Source::Default,
            "temporary" => Source::Temporary,
            "received" => Source::Received,
            "-" | "none" => Source::None,
            _ => Source::Inherited(text.strip_prefix("inherited from ")?.to_owned()),
        })
    }
}

/// One line of `zfs get -H -p -o name,property,value,source`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PropertyValue {
    /// The dataset, snapshot or pool.
    pub name: String,
    /// The property.
    pub property: String,
    /// Its value, as text (`-` where it does not apply).
    pub value: String,
    /// Where the value comes from.
    pub source: Source,
}

/// Parses `zfs get -H -p -o name,property,value,source` (and `zpool get -H
/// -p`, whose columns are the same).
pub fn parse_get(program: &'static str, text: &str) -> Result<Vec<PropertyValue>, ParseError> {
    let mut values = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        let [name, property, value, source] = fields[..] else {
            return Err(error(
                program,
                i + 1,
                format!("{} fields where 4 were expected", fields.len()),
            ));
        };
        let source = Source::parse(source)
            .ok_or_else(|| error(program, i + 1, format!("unknown source {source:?}")))?;
        values.push(PropertyValue {
            name: name.to_owned(),
            property: property.to_owned(),
            value: value.to_owned(),
            source,
        });
    }
    Ok(values)
}

/// `zpool status` of one pool.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PoolStatus {
    /// The pool.
    pub pool: String,
    /// `ONLINE`, `DEGRADED`, `FAULTED`, ...
    pub state: String,
    /// The `status:` paragraph, if any.
    pub status: Option<String>,
    /// The `action:` paragraph, if any.
    pub action: Option<String>,
    /// The `scan:` paragraph (last scrub or resilver), if any.
    pub scan: Option<String>,
    /// The vdev tree, in order.
    pub vdevs: Vec<Vdev>,
    /// The `errors:` line.
    pub errors: String,
}

/// One line of the `config:` tree of `zpool status`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Vdev {
    /// Nesting: 0 for the pool itself, 1 for top-level vdevs, ...
    pub depth: usize,
    /// The vdev's name (`mirror-0`, `sda`, the pool's name, `logs`, ...).
    pub name: String,
    /// Its state (empty for group headings such as `logs`).
    pub state: String,
    /// Read, write and checksum error counts.
    pub errors: Option<(u64, u64, u64)>,
    /// Anything after the counts (e.g. `was /dev/sdb`, `(resilvering)`).
    pub note: String,
}

/// Parses the output of `zpool status [-p] POOL...` (one or more pools).
pub fn parse_status(text: &str) -> Result<Vec<PoolStatus>, ParseError> {
    const P: &str = "zpool status";
    let mut pools = Vec::new();
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut config: Vec<(usize, &str)> = Vec::new();
    let mut in_config = false;
    let mut flush = |fields: &mut Vec<(String, String)>,
                     config: &mut Vec<(usize, &str)>|
     -> Result<(), ParseError> {
        if fields.is_empty() {
            return Ok(());
        }
        pools.push(build_status(
            std::mem::take(fields),
            std::mem::take(config),
        )?);
        Ok(())
    };
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let trimmed = line.trim_start();
        if let Some((key, value)) = heading(line) {
            if key == "pool" {
                flush(&mut fields, &mut config)?;
            } else if fields.is_empty() {
                return Err(error(P, n, format!("{key:?} before any pool")));
            }
            in_config = key == "config";
            fields.push((key.to_owned(), value.trim().to_owned()));
        } else if in_config {
            if !trimmed.is_empty() && !trimmed.starts_with("NAME") {
                config.push((n, line));
            }
        } else if let Some(last) = fields.last_mut() {
            // A continuation of the paragraph above.
            if !trimmed.is_empty() {
                if !last.1.is_empty() {
                    last.1.push('\n');
                }
                last.1.push_str(trimmed);
            }
        } else if !trimmed.is_empty() {
            return Err(error(P, n, "text before the first pool"));
        }
    }
    flush(&mut fields, &mut config)?;
    Ok(pools)
}

/// A `key: value` heading of `zpool status` (`  pool: x`, ` scan: ...`).
fn heading(line: &str) -> Option<(&str, &str)> {
    let (key, value) = line.split_once(':')?;
    let key = key.trim_start();
    let known = [
        "pool",
        "id",
        "state",
        "status",
        "action",
        "see",
        "scan",
        "config",
        "errors",
        "remove",
        "checkpoint",
    ];
    (known.contains(&key) && !key.is_empty() && line.len() - line.trim_start().len() <= 8)
        .then_some((key, value))
}

fn build_status(
    fields: Vec<(String, String)>,
    config: Vec<(usize, &str)>,
) -> Result<PoolStatus, ParseError> {
    const P: &str = "zpool status";
    let take = |key: &str| {
        fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    let pool = take("pool").unwrap_or_default();
    let state = take("state").ok_or_else(|| error(P, 0, format!("pool {pool} has no state")))?;
    let base = config.iter().map(|(_, l)| indent(l)).min().unwrap_or(0);
    let mut vdevs = Vec::new();
    for (n, line) in config {
        let depth = (indent(line) - base) / 2;
        let cols: Vec<&str> = line.split_whitespace().collect();
        let name = (*cols.first().ok_or_else(|| error(P, n, "empty vdev line"))?).to_owned();
        let state = cols.get(1).copied().unwrap_or("").to_owned();
        let counts = if cols.len() >= 5 {
            let c = |i: usize| {
                parse_count(cols[i])
                    .ok_or_else(|| error(P, n, format!("bad error count {:?}", cols[i])))
            };
            Some((c(2)?, c(3)?, c(4)?))
        } else {
            None
        };
        let note = if cols.len() > 5 {
            cols[5..].join(" ")
        } else {
            String::new()
        };
        vdevs.push(Vdev {
            depth,
            name,
            state,
            errors: counts,
            note,
        });
    }
    Ok(PoolStatus {
        pool,
        state,
        status: take("status"),
        action: take("action"),
        scan: take("scan"),
        vdevs,
        errors: take("errors").unwrap_or_default(),
    })
}

/// The indentation of a config line: `zpool status` puts one tab, then two
/// spaces per level.
fn indent(line: &str) -> usize {
    let line = line.strip_prefix('\t').unwrap_or(line);
    line.len() - line.trim_start_matches(' ').len()
}

/// An error count: exact with `-p`, or abbreviated (`1.2K`) without.
fn parse_count(text: &str) -> Option<u64> {
    if let Ok(n) = text.parse() {
        return Some(n);
    }
    let (num, unit) = text.split_at(text.len().checked_sub(1)?);
    let scale = match unit {
        "K" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        _ => return None,
    };
    num.parse::<f64>().ok().map(|v| (v * scale) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tabs_only_split_fields() {
        let rows = parse_list(
            "zfs list",
            "tank/a b\t1024\t-\n",
            &["name", "used", "origin"],
        )
        .unwrap();
        assert_eq!(rows[0].get("name"), Some("tank/a b"));
        assert_eq!(rows[0].number("used").unwrap(), Some(1024));
        assert_eq!(rows[0].number("origin").unwrap(), None);
        assert!(rows[0].number("nope").is_err());
    }

    #[test]
    fn wrong_field_count_is_an_error_with_its_line() {
        let err = parse_list("zfs list", "a\t1\nb\n", &["name", "used"]).unwrap_err();
        assert_eq!(err.line, 2);
    }

    #[test]
    fn ratios_with_and_without_x() {
        let rows = parse_list(
            "zfs list",
            "a\t1.52x\nb\t2.00\n",
            &["name", "compressratio"],
        )
        .unwrap();
        assert_eq!(rows[0].ratio("compressratio").unwrap(), Some(1.52));
        assert_eq!(rows[1].ratio("compressratio").unwrap(), Some(2.0));
    }

    #[test]
    fn sources() {
        let v = parse_get(
            "zfs get",
            "t/a\tcompression\tlz4\tinherited from t\nt/a\tused\t1\t-\n",
        )
        .unwrap();
        assert_eq!(v[0].source, Source::Inherited("t".into()));
        assert_eq!(v[1].source, Source::None);
        assert!(parse_get("zfs get", "t\tx\ty\tsomewhere\n").is_err());
    }

    #[test]
    fn counts() {
        assert_eq!(parse_count("12"), Some(12));
        assert_eq!(parse_count("1.5K"), Some(1500));
        assert_eq!(parse_count("x"), None);
        assert_eq!(parse_count(""), None);
    }

    proptest! {
        #[test]
        fn list_round_trips(rows in proptest::collection::vec(("[a-z][a-z0-9/ ]{0,20}", any::<u64>(), "[-a-z0-9 ]{0,10}"), 0..8)) {
            let text: String = rows.iter().map(|(n, u, s)| format!("{n}\t{u}\t{s}\n")).collect();
            let parsed = parse_list("zfs list", &text, &["name", "used", "source"]).unwrap();
            prop_assert_eq!(parsed.len(), rows.len());
            for (row, (n, u, s)) in parsed.iter().zip(&rows) {
                prop_assert_eq!(row.get("name"), Some(n.as_str()));
                prop_assert_eq!(row.number("used").unwrap(), Some(*u));
                prop_assert_eq!(row.get("source"), Some(s.as_str()));
            }
        }

        #[test]
        fn parsers_never_panic(text in "\\PC{0,300}") {
            let _ = parse_list("zfs list", &text, &["name", "used"]);
            let _ = parse_get("zfs get", &text);
            let _ = parse_status(&text);
        }
    }
}
