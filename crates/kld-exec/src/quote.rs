//! Rendering an argument vector for people: error messages and `--dry-run`.

use std::borrow::Cow;

/// Quotes one argument so that a POSIX shell would read it back unchanged.
///
/// Only used to *show* commands (kld never runs a shell); plain words are
/// left as they are so that the common case stays readable.
///
/// ```
/// assert_eq!(kld_exec::quote("rpool/ROOT@x"), "rpool/ROOT@x");
/// assert_eq!(kld_exec::quote("two words"), "'two words'");
/// assert_eq!(kld_exec::quote("it's"), r#"'it'\''s'"#);
/// assert_eq!(kld_exec::quote(""), "''");
/// ```
pub fn quote(arg: &str) -> Cow<'_, str> {
    let plain = !arg.is_empty()
        && arg.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'_' | b'.' | b'/' | b'@' | b'%' | b'+' | b'=' | b':' | b','
                )
        });
    if plain {
        Cow::Borrowed(arg)
    } else {
        Cow::Owned(format!("'{}'", arg.replace('\'', r"'\''")))
    }
}

/// Renders a program and its arguments as one shell-quoted line.
pub(crate) fn render(program: &str, args: &[String]) -> String {
    let mut line = quote(program).into_owned();
    for arg in args {
        line.push(' ');
        line.push_str(&quote(arg));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the argument, `sh` reads the quoted form back as the same
        /// single word: the real shell is the oracle.
        #[test]
        fn sh_reads_back_the_same_word(arg in "[ -~\t\n]{0,24}") {
            let script = format!("printf '%s' {}", quote(&arg));
            let out = std::process::Command::new("sh").arg("-c").arg(&script).output().unwrap();
            prop_assert_eq!(String::from_utf8(out.stdout).unwrap(), arg);
        }
    }
}
