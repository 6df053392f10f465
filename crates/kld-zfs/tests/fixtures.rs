//! The parsers against output captured from OpenZFS 2.1.11 in the test VM
//! (`tests/fixtures/capture.sh` says how to regenerate it).

use kld_zfs::name::{DatasetName, SnapshotName};
use kld_zfs::parse::{parse_get, parse_list, parse_status, Source};

const CAPTURE: &str = include_str!("fixtures/openzfs-2.1.txt");

/// The text between `=== name` and `=== end`.
fn fixture(name: &str) -> String {
    let start = format!("=== {name}\n");
    let from = CAPTURE
        .find(&start)
        .unwrap_or_else(|| panic!("no fixture {name}"))
        + start.len();
    let len = CAPTURE[from..].find("=== end\n").expect("fixture end");
    CAPTURE[from..from + len].to_owned()
}

#[test]
fn space_listing() {
    let cols = [
        "name",
        "type",
        "used",
        "avail",
        "refer",
        "usedbysnapshots",
        "usedbychildren",
        "usedbyrefreservation",
        "usedbydataset",
        "written",
        "logicalused",
        "compressratio",
        "origin",
        "mountpoint",
    ];
    let rows = parse_list("zfs list", &fixture("zfs-list-space"), &cols).unwrap();
    assert_eq!(rows.len(), 8);
    for row in &rows {
        DatasetName::new(row.get("name").unwrap()).unwrap();
        let used = row.number("used").unwrap().unwrap();
        let parts: u64 = [
            "usedbysnapshots",
            "usedbychildren",
            "usedbyrefreservation",
            "usedbydataset",
        ]
        .iter()
        .map(|c| row.number(c).unwrap().unwrap())
        .sum();
        assert_eq!(
            used,
            parts,
            "used is the sum of its parts for {:?}",
            row.get("name")
        );
        assert!(row.ratio("compressratio").unwrap().unwrap() >= 1.0);
    }
    let spaced = rows
        .iter()
        .find(|r| r.get("name") == Some("fx/home/user with space"))
        .unwrap();
    assert_eq!(spaced.get("mountpoint"), Some("/fx/home/user with space"));
    let clone = rows
        .iter()
        .find(|r| r.get("name") == Some("fx/dbclone"))
        .unwrap();
    assert_eq!(
        SnapshotName::new(clone.get("origin").unwrap())
            .unwrap()
            .to_string(),
        "fx/db@one"
    );
    let vol = rows
        .iter()
        .find(|r| r.get("type") == Some("volume"))
        .unwrap();
    assert!(vol.number("usedbyrefreservation").unwrap().unwrap() > 0);
    assert_eq!(vol.get("mountpoint"), Some("-"));
}

#[test]
fn everything_listing_has_snapshots_and_bookmarks() {
    let cols = ["name", "type", "createtxg", "creation", "used", "userrefs"];
    let rows = parse_list("zfs list", &fixture("zfs-list-all"), &cols).unwrap();
    let kinds = |k: &str| rows.iter().filter(|r| r.get("type") == Some(k)).count();
    assert_eq!(kinds("bookmark"), 1);
    assert_eq!(
        kinds("snapshot"),
        8,
        "7 from `snapshot -r` (volume included) and fx/db@two"
    );
    // `zfs snapshot -r` took every snapshot in one transaction group.
    let txgs: std::collections::BTreeSet<u64> = rows
        .iter()
        .filter(|r| r.get("name").is_some_and(|n| n.ends_with("@one")))
        .map(|r| r.number("createtxg").unwrap().unwrap())
        .collect();
    assert_eq!(txgs.len(), 1, "{txgs:?}");
}

#[test]
fn snapshot_listing_shows_clones() {
    let rows = parse_list(
        "zfs list",
        &fixture("zfs-list-snapshots"),
        &["name", "used", "written", "refer", "clones"],
    )
    .unwrap();
    let db = rows
        .iter()
        .find(|r| r.get("name") == Some("fx/db@one"))
        .unwrap();
    assert_eq!(db.get("clones"), Some("fx/dbclone"));
    assert!(
        db.number("used").unwrap().unwrap() > 0,
        "unique space of a snapshot with newer data"
    );
}

#[test]
fn property_values_and_sources() {
    let all = parse_get("zfs get", &fixture("zfs-get-all")).unwrap();
    assert!(all.len() > 50);
    let find = |p: &str| all.iter().find(|v| v.property == p).unwrap();
    assert_eq!(find("recordsize").value, "8192");
    assert_eq!(find("recordsize").source, Source::Local);
    assert_eq!(find("compression").source, Source::Inherited("fx".into()));
    assert_eq!(find("used").source, Source::None);
    assert_eq!(find("kld:note").value, "a user property; with: punctuation");

    let some = parse_get("zfs get", &fixture("zfs-get-some")).unwrap();
    let var = some
        .iter()
        .find(|v| v.name == "fx/var" && v.property == "canmount")
        .unwrap();
    assert_eq!((var.value.as_str(), &var.source), ("off", &Source::Local));
    let spaced = some
        .iter()
        .find(|v| v.name == "fx/home/user with space" && v.property == "mountpoint")
        .unwrap();
    assert_eq!(spaced.source, Source::Inherited("fx".into()));
}

#[test]
fn pool_listing_and_properties() {
    let cols = [
        "name", "size", "alloc", "free", "frag", "cap", "dedup", "health", "altroot",
    ];
    let pools = parse_list("zpool list", &fixture("zpool-list"), &cols).unwrap();
    assert_eq!(pools.len(), 1);
    let p = &pools[0];
    assert_eq!(
        p.number("size").unwrap().unwrap(),
        p.number("alloc").unwrap().unwrap() + p.number("free").unwrap().unwrap()
    );
    assert_eq!(p.get("health"), Some("ONLINE"));
    let props = parse_get("zpool get", &fixture("zpool-get")).unwrap();
    assert!(props
        .iter()
        .any(|v| v.property == "ashift" && v.value == "12"));
}

#[test]
fn pool_status_healthy_scrubbed_and_degraded() {
    let healthy = parse_status(&fixture("zpool-status")).unwrap();
    assert_eq!(healthy.len(), 1);
    let h = &healthy[0];
    assert_eq!((h.pool.as_str(), h.state.as_str()), ("fx", "ONLINE"));
    assert_eq!(h.scan, None);
    let names: Vec<(usize, &str)> = h.vdevs.iter().map(|v| (v.depth, v.name.as_str())).collect();
    assert_eq!(names, [(0, "fx"), (1, "mirror-0"), (2, "vda"), (2, "vdb")]);
    assert_eq!(h.errors, "No known data errors");

    let scrubbed = &parse_status(&fixture("zpool-status-scrubbed")).unwrap()[0];
    assert!(scrubbed
        .scan
        .as_deref()
        .unwrap()
        .starts_with("scrub repaired 0B"));

    let degraded = &parse_status(&fixture("zpool-status-degraded")).unwrap()[0];
    assert_eq!(degraded.state, "DEGRADED");
    assert!(degraded
        .status
        .as_deref()
        .unwrap()
        .contains("taken offline"));
    assert!(degraded
        .action
        .as_deref()
        .unwrap()
        .ends_with("'zpool replace'."));
    let vdb = degraded.vdevs.iter().find(|v| v.name == "vdb").unwrap();
    assert_eq!(
        (vdb.state.as_str(), vdb.errors),
        ("OFFLINE", Some((0, 0, 0)))
    );
}
