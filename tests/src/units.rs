//! `systemd-analyze verify` of the unit files kld ships, stricter than its
//! exit status: a warning that names one of the units fails as well (an
//! unknown key, say, is only a warning to systemd).

use std::path::Path;

/// Verifies `units` (paths whose file names are unit names) together;
/// panics with systemd's words if it refuses one or warns about one.
pub fn verify(units: &[&Path]) {
    let mut cmd = kld_exec::Cmd::new("systemd-analyze").arg("verify");
    for u in units {
        cmd = cmd.arg(u);
    }
    let out = cmd
        .run()
        .unwrap_or_else(|e| panic!("systemd-analyze verify refused a unit: {e}"));
    let said = String::from_utf8_lossy(&out.stderr);
    let names: Vec<String> = units
        .iter()
        .map(|u| u.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let about_ours: Vec<&str> = said
        .lines()
        .filter(|l| names.iter().any(|n| l.contains(n.as_str())))
        .collect();
    assert!(
        about_ours.is_empty(),
        "systemd-analyze verify warns about kld's units:\n{}",
        about_ours.join("\n")
    );
}

#[cfg(test)]
mod tests {
    #[test]
    #[should_panic(expected = "Unknown key")]
    fn a_warning_about_the_unit_fails() {
        let dir = tempfile::tempdir().unwrap();
        let unit = dir.path().join("kld-check.service");
        std::fs::write(
            &unit,
            "[Unit]\nDescription=x\n[Service]\nType=oneshot\nNoSuchKey=1\nExecStart=/bin/true\n",
        )
        .unwrap();
        super::verify(&[&unit]);
    }
}
