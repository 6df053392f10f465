//! Listing output in the four modes every kld listing offers: a human table
//! (default), `-H` (no header, tab-separated), `-p` (exact numbers) and
//! `--json` (versioned with `apiVersion` and `kind`).
//!
//! Every JSON document a kld binary prints goes through [`print_json`]: indented
//! when standard output is a terminal (a person reads it), one compact line
//! otherwise (a program reads it: pipes, files, `$(...)`). Only whitespace
//! differs; the document is the same.

use std::io::{IsTerminal, Write};

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

/// One value of a table, in its human, exact and JSON forms (each made
/// only when the chosen mode needs it).
#[derive(Debug, Clone)]
pub struct Cell(Kind);

#[derive(Debug, Clone)]
enum Kind {
    Text(String),
    Bytes(u64),
    Number(u64),
    Percent(u64),
    Ratio(f64),
    Time(u64),
    None,
    List(Vec<String>),
}

impl Cell {
    /// Text, the same in every mode.
    pub fn text(s: impl Into<String>) -> Cell {
        Cell(Kind::Text(s.into()))
    }

    /// A byte count: `1.5G` for people, exact otherwise.
    pub fn bytes(n: u64) -> Cell {
        Cell(Kind::Bytes(n))
    }

    /// A plain number.
    pub fn number(n: u64) -> Cell {
        Cell(Kind::Number(n))
    }

    /// A percentage: `42%` for people, `42` otherwise.
    pub fn percent(n: u64) -> Cell {
        Cell(Kind::Percent(n))
    }

    /// A ratio such as a compression ratio: `1.52x`, `1.52` exact.
    pub fn ratio(r: f64) -> Cell {
        Cell(Kind::Ratio(r))
    }

    /// A moment: an ISO date in UTC for people, seconds since the epoch
    /// otherwise.
    pub fn time(epoch: u64) -> Cell {
        Cell(Kind::Time(epoch))
    }

    /// Nothing (`-` in tables, `null` in JSON).
    pub fn none() -> Cell {
        Cell(Kind::None)
    }

    /// A list of names: comma-separated in tables, an array in JSON.
    pub fn list(items: impl Into<Vec<String>>) -> Cell {
        Cell(Kind::List(items.into()))
    }

    /// The form for people.
    fn human(&self) -> String {
        match &self.0 {
            Kind::Bytes(n) => human_bytes(*n),
            Kind::Percent(n) => format!("{n}%"),
            Kind::Ratio(r) => format!("{r:.2}x"),
            Kind::Time(t) => crate::time::iso_utc(*t),
            _ => self.exact(),
        }
    }

    /// The exact form (`-p`).
    fn exact(&self) -> String {
        match &self.0 {
            Kind::Text(s) => s.clone(),
            Kind::Bytes(n) | Kind::Number(n) | Kind::Percent(n) | Kind::Time(n) => n.to_string(),
            Kind::Ratio(r) => format!("{r:.2}"),
            Kind::None => "-".into(),
            Kind::List(items) if items.is_empty() => "-".into(),
            Kind::List(items) => items.join(","),
        }
    }
}

impl serde::Serialize for Cell {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Kind::Text(t) => s.serialize_str(t),
            Kind::Bytes(n) | Kind::Number(n) | Kind::Percent(n) | Kind::Time(n) => {
                s.serialize_u64(*n)
            }
            Kind::Ratio(r) if r.is_finite() => s.serialize_f64(*r),
            Kind::Ratio(_) | Kind::None => s.serialize_unit(),
            Kind::List(items) => items.serialize(s),
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

    /// Renders the table in the mode `args` asks for (JSON laid out as
    /// [`JsonStyle::for_stdout`] says).
    pub fn render(&self, args: &OutputArgs) -> String {
        if args.json {
            let text = json_bytes(&JsonDoc::new(self), JsonStyle::for_stdout());
            return String::from_utf8(text).expect("serde_json writes UTF-8");
        }
        let cell = |c: &Cell| {
            if args.parsable {
                c.exact()
            } else {
                c.human()
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

    /// Prints the table to standard output (JSON per [`print_json`]).
    pub fn print(&self, args: &OutputArgs) {
        if args.json {
            print_json(&JsonDoc::new(self));
        } else {
            let _ = std::io::stdout()
                .lock()
                .write_all(self.render(args).as_bytes());
        }
    }
}

/// How a JSON document is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonStyle {
    /// Indented, for people.
    Pretty,
    /// One line, for programs.
    Compact,
}

impl JsonStyle {
    /// The rule every kld binary follows: [`JsonStyle::Pretty`] when
    /// standard output is a terminal, [`JsonStyle::Compact`] otherwise.
    pub fn for_stdout() -> JsonStyle {
        if std::io::stdout().is_terminal() {
            JsonStyle::Pretty
        } else {
            JsonStyle::Compact
        }
    }
}

/// Writes `doc` as JSON text in `style` to `out`, ending with a newline.
pub fn write_json<W: Write, T: serde::Serialize + ?Sized>(
    mut out: W,
    doc: &T,
    style: JsonStyle,
) -> std::io::Result<()> {
    match style {
        JsonStyle::Pretty => serde_json::to_writer_pretty(&mut out, doc),
        JsonStyle::Compact => serde_json::to_writer(&mut out, doc),
    }
    .map_err(std::io::Error::from)?;
    out.write_all(b"\n")
}

/// `doc` as JSON text in `style`, ending with a newline.
pub fn json_bytes<T: serde::Serialize + ?Sized>(doc: &T, style: JsonStyle) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    write_json(&mut out, doc, style).expect("JSON values serialise");
    out
}

/// Prints a JSON document to standard output in the style
/// [`JsonStyle::for_stdout`] picks, streamed through one 64 KiB buffer
/// (no copy of the whole text) and flushed once.
pub fn print_json<T: serde::Serialize + ?Sized>(doc: &T) {
    let style = JsonStyle::for_stdout();
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    let _ = write_json(&mut out, doc, style).and_then(|()| out.flush());
}

/// A table's JSON document, serialised straight from its cells (no
/// intermediate `Value` tree): keys in sorted order, as a `serde_json::Map`
/// would give them, and for a field named twice the last column wins.
struct JsonDoc<'a> {
    table: &'a Table,
    /// Column indexes in the order their fields are written.
    order: Vec<usize>,
}

impl<'a> JsonDoc<'a> {
    fn new(table: &'a Table) -> JsonDoc<'a> {
        let mut order: Vec<usize> = (0..table.columns.len()).collect();
        order.sort_by_key(|&i| table.columns[i].1);
        // Stable sort: among equal fields the last column is last; keep it.
        let mut kept: Vec<usize> = Vec::with_capacity(order.len());
        for i in order {
            match kept.last_mut() {
                Some(k) if table.columns[*k].1 == table.columns[i].1 => *k = i,
                _ => kept.push(i),
            }
        }
        JsonDoc { table, order: kept }
    }
}

impl serde::Serialize for JsonDoc<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let rows: Vec<JsonRow<'_>> = self
            .table
            .rows
            .iter()
            .map(|row| JsonRow { doc: self, row })
            .collect();
        let mut map = s.serialize_map(Some(3))?;
        map.serialize_entry("apiVersion", API_VERSION)?;
        map.serialize_entry("items", &rows)?;
        map.serialize_entry("kind", self.table.kind)?;
        map.end()
    }
}

/// One row of a [`JsonDoc`].
struct JsonRow<'a> {
    doc: &'a JsonDoc<'a>,
    row: &'a [Cell],
}

impl serde::Serialize for JsonRow<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.doc.order.len()))?;
        for &i in &self.doc.order {
            map.serialize_entry(self.doc.table.columns[i].1, &self.row[i])?;
        }
        map.end()
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
    use serde_json::Value;

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
    fn json_fields_are_sorted_and_typed() {
        let mut t = Table::new(
            "Kinds",
            &[
                ("Z", "z"),
                ("A", "a"),
                ("L", "list"),
                ("R", "ratio"),
                ("T", "time"),
            ],
        );
        t.push(vec![
            Cell::percent(42),
            Cell::text("x"),
            Cell::list(Vec::new()),
            Cell::ratio(f64::NAN),
            Cell::time(86400),
        ]);
        let text = t.render(&OutputArgs {
            json: true,
            ..Default::default()
        });
        let keys: Vec<usize> = ["\"a\"", "\"list\"", "\"ratio\"", "\"time\"", "\"z\""]
            .iter()
            .map(|k| text.find(k).unwrap())
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{text}");
        let json: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            json["items"][0],
            serde_json::json!({"a": "x", "list": [], "ratio": null, "time": 86400, "z": 42})
        );
        assert_eq!(
            t.render(&OutputArgs::default()).lines().nth(1).unwrap(),
            "42%  x  -  NaNx  1970-01-02 00:00:00Z"
        );
    }

    #[test]
    fn json_styles_differ_only_in_whitespace() {
        let t = sample();
        let doc = JsonDoc::new(&t);
        let pretty = String::from_utf8(json_bytes(&doc, JsonStyle::Pretty)).unwrap();
        let compact = String::from_utf8(json_bytes(&doc, JsonStyle::Compact)).unwrap();
        assert!(
            pretty.contains("\n  \"apiVersion\": \"kld/v1\""),
            "{pretty}"
        );
        assert_eq!(compact.lines().count(), 1, "{compact}");
        assert!(compact.starts_with("{\"apiVersion\":\"kld/v1\",\"items\":["));
        assert!(pretty.ends_with("}\n") && compact.ends_with("}\n"));
        let squeeze = |s: &str| s.split_whitespace().collect::<String>();
        assert_eq!(squeeze(&pretty), squeeze(&compact));
        assert_eq!(
            serde_json::from_str::<Value>(&pretty).unwrap(),
            serde_json::from_str::<Value>(&compact).unwrap()
        );
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
