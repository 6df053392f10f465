//! Finding the shared libraries a program needs, from `ldd`'s output.

use kld_exec::Cmd;

/// The absolute paths of the shared libraries (and the dynamic loader) that
/// `ldd` lists. The vDSO is skipped; a library `ldd` cannot find is an error.
pub fn parse_ldd(text: &str) -> Result<Vec<String>, String> {
    let mut libs = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.contains("statically linked") || line.contains("not a dynamic executable") {
            continue;
        }
        let path = match line.split_once(" => ") {
            Some((name, rest)) => {
                if rest.trim() == "not found" {
                    return Err(format!("library {name} not found"));
                }
                rest.split(" (").next().unwrap_or("").trim()
            }
            None => line.split(" (").next().unwrap_or("").trim(),
        };
        if path.starts_with('/') {
            libs.push(path.to_owned());
        } else if !path.starts_with("linux-vdso") && !path.is_empty() {
            return Err(format!("cannot read ldd line {line:?}"));
        }
    }
    Ok(libs)
}

/// Runs `ldd` on `program` and returns what [`parse_ldd`] finds.
pub fn libraries_of(program: &str) -> Result<Vec<String>, String> {
    let out = Cmd::new("ldd").arg(program).run();
    let text = match out {
        Ok(out) => out.stdout_str(),
        // ldd exits 1 for a static program; that is not a failure here.
        Err(e) if e.stderr().contains("not a dynamic executable") => return Ok(Vec::new()),
        Err(e) => return Err(e.to_string()),
    };
    parse_ldd(&text).map_err(|e| format!("{program}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `ldd /usr/sbin/zfs` on Debian 12, trimmed.
    const ZFS: &str = "\tlinux-vdso.so.1 (0x00007ffd3b1e4000)
\tlibzfs.so.4 => /lib/x86_64-linux-gnu/libzfs.so.4 (0x00007f3c3eac1000)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f3c3e893000)
\t/lib64/ld-linux-x86-64.so.2 (0x00007f3c3eb65000)
";

    #[test]
    fn reads_libraries_and_loader() {
        assert_eq!(
            parse_ldd(ZFS).unwrap(),
            [
                "/lib/x86_64-linux-gnu/libzfs.so.4",
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib64/ld-linux-x86-64.so.2"
            ]
        );
    }

    #[test]
    fn missing_library_is_an_error() {
        let err = parse_ldd("\tlibgone.so.1 => not found\n").unwrap_err();
        assert!(err.contains("libgone.so.1"));
    }

    #[test]
    fn static_programs_and_scripts_need_nothing() {
        assert!(libraries_of("/etc/passwd").unwrap().is_empty());
        assert_eq!(
            parse_ldd("\tstatically linked\n").unwrap(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn real_ldd_output_parses() {
        let libs = libraries_of("/bin/sh").unwrap();
        assert!(libs.iter().any(|l| l.contains("libc.so")), "{libs:?}");
    }

    proptest! {
        #[test]
        fn never_panics(text in "\\PC{0,200}") {
            let _ = parse_ldd(&text);
        }
    }
}
