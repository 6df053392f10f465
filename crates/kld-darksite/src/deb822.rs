//! deb822 control data: paragraphs of `Name: value` fields separated by
//! blank lines, values folded onto continuation lines that start with a
//! space or a tab (Debian Policy §5.1). Used by `Packages`, `Release`,
//! `InRelease` and `.deb` control files.
//!
//! Parsing borrows from the text (a 50 MB `Packages` index is not copied);
//! [`Stanza`] is the owned form that renders back.

use std::fmt::Write as _;

/// Why a text is not deb822.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Deb822Error {
    /// A line is neither a field, a continuation nor a blank line.
    #[error("line {line}: not a field (no ':'): {text:?}")]
    NotAField {
        /// 1-based line number.
        line: usize,
        /// The line (cut to 80 characters).
        text: String,
    },
    /// A continuation line with no field before it.
    #[error("line {line}: continuation line outside a field")]
    StrayContinuation {
        /// 1-based line number.
        line: usize,
    },
    /// A field name that is empty, holds white space or starts with `-`/`#`.
    #[error("line {line}: bad field name {name:?}")]
    BadName {
        /// 1-based line number.
        line: usize,
        /// The name found.
        name: String,
    },
    /// The same field twice in one paragraph.
    #[error("line {line}: field {name} given twice in one paragraph")]
    Duplicate {
        /// 1-based line number of the second one.
        line: usize,
        /// The field name.
        name: String,
    },
}

/// One field of a paragraph, borrowed from the parsed text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    /// The name as written.
    pub name: &'a str,
    /// The value after the colon: leading blanks of the first line removed,
    /// continuation lines kept as written (each after a `\n`), no final
    /// newline.
    pub raw: &'a str,
}

/// One paragraph, borrowed from the parsed text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paragraph<'a> {
    /// The paragraph's text, from its first field to the end of its last
    /// line (newline included when there is one).
    pub text: &'a str,
    /// 1-based line number of its first field.
    pub line: usize,
    /// Its fields in order.
    pub fields: Vec<Field<'a>>,
}

impl<'a> Paragraph<'a> {
    /// The value of field `name` (matched case-insensitively), trimmed.
    /// Folded values keep their line breaks.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
            .map(|f| f.raw.trim())
    }

    /// The continuation lines of a multi-line field (e.g. `SHA256` in a
    /// Release file), each trimmed, blank ones dropped.
    pub fn lines(&self, name: &str) -> Vec<&'a str> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
            .map(|f| {
                f.raw
                    .split('\n')
                    .skip(1)
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// An owned copy.
    pub fn to_stanza(&self) -> Stanza {
        Stanza {
            fields: self
                .fields
                .iter()
                .map(|f| (f.name.to_owned(), f.raw.to_owned()))
                .collect(),
        }
    }
}

/// Parses deb822 text into paragraphs. Lines starting with `#` outside a
/// value are comments.
pub fn parse(text: &str) -> Result<Vec<Paragraph<'_>>, Deb822Error> {
    let mut out = Vec::new();
    let mut current: Option<(usize, usize, Vec<Field<'_>>)> = None; // start byte, line, fields
                                                                    // (name, value start byte, value end byte) of the field being read.
    let mut open: Option<(&str, usize, usize)> = None;
    let mut pos = 0;
    let mut line_no = 0;
    macro_rules! finish_field {
        () => {
            if let (Some((name, s, e)), Some((_, _, fields))) = (open.take(), current.as_mut()) {
                fields.push(Field {
                    name,
                    raw: &text[s..e],
                });
            }
        };
    }
    macro_rules! finish_paragraph {
        ($end:expr) => {
            finish_field!();
            if let Some((start, line, fields)) = current.take() {
                out.push(Paragraph {
                    text: &text[start..$end],
                    line,
                    fields,
                });
            }
        };
    }
    while pos < text.len() {
        line_no += 1;
        let end = text[pos..].find('\n').map_or(text.len(), |i| pos + i);
        let line = &text[pos..end];
        let next = if end < text.len() { end + 1 } else { end };
        if line.trim().is_empty() {
            finish_paragraph!(pos);
        } else if line.starts_with(' ') || line.starts_with('\t') {
            match open.as_mut() {
                Some((_, _, e)) => *e = end,
                None => return Err(Deb822Error::StrayContinuation { line: line_no }),
            }
        } else if line.starts_with('#') {
            // A comment; it neither ends nor continues a field's value.
        } else {
            let Some(colon) = line.find(':') else {
                return Err(Deb822Error::NotAField {
                    line: line_no,
                    text: line.chars().take(80).collect(),
                });
            };
            let name = &line[..colon];
            if name.is_empty()
                || name.starts_with('-')
                || name.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(Deb822Error::BadName {
                    line: line_no,
                    name: name.to_owned(),
                });
            }
            finish_field!();
            let fields = &mut current.get_or_insert_with(|| (pos, line_no, Vec::new())).2;
            if fields.iter().any(|f| f.name.eq_ignore_ascii_case(name)) {
                return Err(Deb822Error::Duplicate {
                    line: line_no,
                    name: name.to_owned(),
                });
            }
            let after = &line[colon + 1..];
            let blanks = after.len() - after.trim_start_matches([' ', '\t']).len();
            open = Some((name, pos + colon + 1 + blanks, end));
        }
        pos = next;
    }
    finish_paragraph!(text.len());
    Ok(out)
}

/// An owned paragraph that renders as deb822.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stanza {
    fields: Vec<(String, String)>,
}

impl Stanza {
    /// An empty paragraph.
    pub fn new() -> Stanza {
        Stanza::default()
    }

    /// Sets a field (replacing one of the same name in place, else adding
    /// it at the end). A multi-line value is `first line` then `\n` and
    /// continuation lines that each start with a space.
    pub fn set(&mut self, name: &str, value: impl Into<String>) -> &mut Stanza {
        let value = value.into();
        match self
            .fields
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some(slot) => slot.1 = value,
            None => self.fields.push((name.to_owned(), value)),
        }
        self
    }

    /// The value of a field, trimmed.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    }

    /// The fields in order.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Appends the paragraph as text (each field on its own line, no blank
    /// line after it).
    pub fn render_into(&self, out: &mut String) {
        for (name, value) in &self.fields {
            if value.starts_with('\n') || value.is_empty() {
                let _ = writeln!(out, "{name}:{value}");
            } else {
                let _ = writeln!(out, "{name}: {value}");
            }
        }
    }

    /// The paragraph as text.
    pub fn render(&self) -> String {
        let mut s = String::new();
        self.render_into(&mut s);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SAMPLE: &str = "Package: openssh-server\nVersion: 1:9.2p1-2+deb12u3\nDepends: libc6 (>= 2.34),\n libssl3 (>= 3.0.0)\nDescription: secure shell (SSH) server\n This is the portable version.\n .\n More.\n\n\nPackage: b\n# a comment\nVersion: 1\n";

    #[test]
    fn paragraphs_fields_and_folding() {
        let ps = parse(SAMPLE).unwrap();
        assert_eq!(ps.len(), 2);
        assert_eq!(ps[0].get("package"), Some("openssh-server"));
        assert_eq!(
            ps[0].get("Depends"),
            Some("libc6 (>= 2.34),\n libssl3 (>= 3.0.0)")
        );
        assert_eq!(
            ps[0].lines("Description"),
            vec!["This is the portable version.", ".", "More."]
        );
        assert!(ps[0].text.ends_with("More.\n"));
        assert_eq!(ps[1].line, 11);
        assert_eq!(ps[1].get("Version"), Some("1"));
        assert_eq!(ps[1].get("Missing"), None);
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(
            parse("A: 1\n b\nnonsense\n"),
            Err(Deb822Error::NotAField {
                line: 3,
                text: "nonsense".into()
            })
        );
        assert_eq!(
            parse(" x\n"),
            Err(Deb822Error::StrayContinuation { line: 1 })
        );
        assert!(matches!(
            parse("A: 1\na: 2\n"),
            Err(Deb822Error::Duplicate { line: 2, .. })
        ));
        assert!(matches!(parse("-A: 1\n"), Err(Deb822Error::BadName { .. })));
        assert!(matches!(
            parse("A B: 1\n"),
            Err(Deb822Error::BadName { .. })
        ));
    }

    #[test]
    fn release_style_multiline() {
        let ps = parse("SHA256:\n abc 12 main/x\n def 3 main/y\nDate: now\n").unwrap();
        assert_eq!(ps[0].lines("SHA256"), vec!["abc 12 main/x", "def 3 main/y"]);
        let text = ps[0].to_stanza().render();
        assert_eq!(text, "SHA256:\n abc 12 main/x\n def 3 main/y\nDate: now\n");
    }

    fn stanza() -> impl Strategy<Value = Vec<(String, String)>> {
        proptest::collection::vec(
            (
                "[A-Za-z][A-Za-z0-9-]{0,12}",
                "[!-~][ -~]{0,20}",
                proptest::collection::vec("[!-~][ -~]{0,20}", 0..3),
            ),
            1..8,
        )
        .prop_map(|fields| {
            let mut seen = std::collections::HashSet::new();
            fields
                .into_iter()
                .filter(|(n, _, _)| seen.insert(n.to_ascii_lowercase()))
                .map(|(n, first, rest)| {
                    let mut v = first.trim_end().to_owned();
                    for l in rest {
                        v.push_str("\n ");
                        v.push_str(l.trim_end());
                    }
                    (n, v)
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn render_parse_round_trip(ps in proptest::collection::vec(stanza(), 1..4)) {
            let mut text = String::new();
            let mut stanzas = Vec::new();
            for fields in &ps {
                let mut s = Stanza::new();
                for (n, v) in fields {
                    s.set(n, v.clone());
                }
                if !text.is_empty() {
                    text.push('\n');
                }
                s.render_into(&mut text);
                stanzas.push(s);
            }
            let parsed = parse(&text).unwrap();
            let back: Vec<Stanza> = parsed.iter().map(Paragraph::to_stanza).collect();
            prop_assert_eq!(back, stanzas);
        }

        #[test]
        fn never_panics(text in "(?s)[ -~\\n\\t#:]{0,300}") {
            let _ = parse(&text);
        }

        #[test]
        fn never_panics_on_any_unicode(text in "(?s)\\PC{0,200}") {
            if let Ok(ps) = parse(&text) {
                for p in ps {
                    for f in &p.fields {
                        let _ = p.get(f.name);
                        let _ = p.lines(f.name);
                    }
                }
            }
        }
    }
}
