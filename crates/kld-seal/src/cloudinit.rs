//! cloud-init's `datasource_list`: which files set it, and each file with
//! the key taken out. Pure functions over the YAML text (only the top-level
//! key and what belongs to it are touched; every other line is kept).

/// The one file kld leaves that defines `datasource_list`, inside the tree.
pub const DATASOURCE_FILE: &str = "/etc/cloud/cloud.cfg.d/90_kld_datasources.cfg";

/// The datasources, NoCloud and ConfigDrive first (local, no network
/// probe), then the major clouds, ending in `None` so that a boot with no
/// datasource still runs cloud-init's modules.
pub const DATASOURCES: &[&str] = &[
    "NoCloud",
    "ConfigDrive",
    "OpenStack",
    "Ec2",
    "Azure",
    "GCE",
    "Oracle",
    "DigitalOcean",
    "Hetzner",
    "Scaleway",
    "Vultr",
    "LXD",
    "VMware",
    "OVF",
    "CloudStack",
    "AltCloud",
    "None",
];

/// The text of [`DATASOURCE_FILE`]: one line.
pub fn datasource_file_text() -> String {
    format!(
        "# Written by kld-seal: the one place that sets the datasources.\ndatasource_list: [ {} ]\n",
        DATASOURCES.join(", ")
    )
}

fn starts_key(line: &str) -> bool {
    line.strip_prefix("datasource_list")
        .is_some_and(|rest| rest.trim_start().starts_with(':'))
}

/// Whether the YAML text sets `datasource_list` at the top level.
pub fn defines_datasource_list(text: &str) -> bool {
    text.lines().any(starts_key)
}

/// The `datasource_list` values set at the top level, one string per
/// definition (the text after the colon, continuation lines joined).
pub fn datasource_lists(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if !starts_key(line) {
            continue;
        }
        let mut value = line
            .split_once(':')
            .map(|x| x.1)
            .unwrap_or("")
            .trim()
            .to_owned();
        while lines.peek().is_some_and(|l| continues(l, &value)) {
            value.push(' ');
            value.push_str(lines.next().unwrap_or("").trim());
        }
        out.push(value);
    }
    out
}

/// Whether `line` belongs to the value begun so far: an indented or `- `
/// line, or any line while a `[` flow list is still open.
fn continues(line: &str, value: &str) -> bool {
    let open = value.matches('[').count() > value.matches(']').count();
    open || line.starts_with(' ') || line.starts_with('\t') || line.starts_with("- ") || line == "-"
}

/// The text without its top-level `datasource_list` (and the lines that
/// continue its value); `None` when it does not set it.
pub fn strip_datasource_list(text: &str) -> Option<String> {
    if !defines_datasource_list(text) {
        return None;
    }
    let mut out = String::new();
    let mut value: Option<String> = None;
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end_matches('\n');
        if let Some(v) = &mut value {
            if continues(bare, v) {
                v.push_str(bare);
                continue;
            }
            value = None;
        }
        if starts_key(bare) {
            value = Some(bare.split_once(':').map(|x| x.1).unwrap_or("").to_owned());
            continue;
        }
        out.push_str(line);
    }
    Some(out)
}

/// Whether text holds nothing but comments and blank lines.
pub fn only_comments(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .all(|l| l.is_empty() || l.starts_with('#') || l == "---")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn debian_shapes() {
        let dpkg = "# to update this file, run dpkg-reconfigure cloud-init\ndatasource_list: [ NoCloud, ConfigDrive, OpenNebula, None ]\n";
        assert!(defines_datasource_list(dpkg));
        assert_eq!(
            datasource_lists(dpkg),
            ["[ NoCloud, ConfigDrive, OpenNebula, None ]"]
        );
        assert!(only_comments(&strip_datasource_list(dpkg).unwrap()));

        let block =
            "users:\n  - default\ndatasource_list:\n  - Ec2\n  - None\ndisable_root: true\n";
        assert_eq!(
            strip_datasource_list(block).unwrap(),
            "users:\n  - default\ndisable_root: true\n"
        );
        let flow = "a: 1\ndatasource_list: [ Ec2,\nNone ]\nb: 2\n";
        assert_eq!(strip_datasource_list(flow).unwrap(), "a: 1\nb: 2\n");
        assert_eq!(datasource_lists(flow), ["[ Ec2, None ]"]);
        assert_eq!(strip_datasource_list("a: 1\n"), None);
        // Nested keys of the same name are not the top-level one.
        assert!(!defines_datasource_list("x:\n  datasource_list: [ a ]\n"));
    }

    #[test]
    fn our_file_is_one_line_ending_in_none() {
        let t = datasource_file_text();
        let lists = datasource_lists(&t);
        assert_eq!(lists.len(), 1);
        assert!(lists[0].ends_with("None ]"));
        assert_eq!(
            t.lines().filter(|l| l.contains("datasource_list")).count(),
            1
        );
    }

    proptest! {
        #[test]
        fn strip_never_panics_and_removes_the_key(s in "(\\PC{0,20}\n){0,8}") {
            let _ = datasource_lists(&s);
            if let Some(stripped) = strip_datasource_list(&s) {
                prop_assert!(!defines_datasource_list(&stripped));
            }
        }

        #[test]
        fn other_keys_survive(keys in proptest::collection::vec("[a-z_]{1,10}: [a-z0-9]{0,6}", 0..6), list in "[A-Za-z, ]{0,30}") {
            let body: String = keys.iter().map(|k| format!("{k}\n")).collect();
            let with = format!("datasource_list: [ {list} ]\n{body}");
            prop_assume!(!list.contains('[') && !list.contains(']'));
            prop_assert_eq!(strip_datasource_list(&with).unwrap(), body);
        }
    }
}
