//! The library API on real OpenZFS: this test binary boots the test VM and
//! runs itself inside it (`KLD_VM_INSIDE=1`), where each check below talks
//! to a real pool on a blank disk.

use std::time::Duration;

use kld_zfs::name::{BookmarkName, DatasetName, PoolName, SnapshotName};
use kld_zfs::props::Property;
use kld_zfs::send::{Receive, Send};
use kld_zfs::{Depth, Kind, Zfs, DATASETS};

const INSIDE: &str = "KLD_VM_INSIDE";

#[test]
fn library_api_on_real_openzfs() {
    if std::env::var_os(INSIDE).is_some() {
        inside();
        return;
    }
    let me = std::env::current_exe().unwrap();
    let name = me.file_name().unwrap().to_string_lossy().into_owned();
    let script = format!(
        "set -e\nzpool create -O mountpoint=/api api $KLD_VM_DISKS\n\
         {INSIDE}=1 {name} --exact library_api_on_real_openzfs --nocapture --test-threads 1\n"
    );
    let run = kld_tests::vm::Vm::new()
        .without_binaries()
        .with_program(&me)
        .disks(1)
        .timeout(Duration::from_secs(900))
        .run(&script, &mut std::io::sink())
        .unwrap();
    assert_eq!(run.exit_code, 0, "inside the VM:\n{}", run.output_str());
    assert!(
        run.output_str().contains("every check passed"),
        "{}",
        run.output_str()
    );
}

fn ds(name: &str) -> DatasetName {
    DatasetName::new(name).unwrap()
}

fn snap(name: &str) -> SnapshotName {
    SnapshotName::new(name).unwrap()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap()
}

fn txg(zfs: &Zfs, name: &str) -> String {
    zfs.get_one(name, "createtxg").unwrap()
}

fn inside() {
    let zfs = Zfs::new();
    let cli = Zfs::commands_only();

    // create with properties and parents; get; set; inherit.
    let props = [
        Property::parse("compression=lz4").unwrap(),
        Property::parse("kld:note=x y").unwrap(),
    ];
    zfs.create(&ds("api/a/b"), &props, true).run().unwrap();
    assert_eq!(zfs.get_one("api/a/b", "compression").unwrap(), "lz4");
    assert_eq!(zfs.get_one("api/a/b", "kld:note").unwrap(), "x y");
    assert_eq!(zfs.get_one("api/a", "compression").unwrap(), "off");
    zfs.set(&ds("api/a"), &[Property::parse("atime=off").unwrap()])
        .run()
        .unwrap();
    zfs.inherit(&ds("api/a/b"), "kld:note", false)
        .unwrap()
        .run()
        .unwrap();
    assert_eq!(zfs.get_one("api/a/b", "kld:note").unwrap(), "-");
    assert!(zfs.inherit(&ds("api/a"), "nonsense", false).is_err());
    assert!(zfs.exists("api/a/b").unwrap());
    assert!(!zfs.exists("api/zzz").unwrap());
    assert!(matches!(
        zfs.get(&["api/zzz"], &["used"], false),
        Err(kld_zfs::Error::NotFound(_))
    ));

    // Snapshots of many datasets in one transaction group, both ways.
    zfs.create(&ds("api/c"), &[], false).run().unwrap();
    for (engine, tag) in [(&zfs, "lzc"), (&cli, "cli")] {
        let names = [
            snap(&format!("api/a@{tag}")),
            snap(&format!("api/a/b@{tag}")),
            snap(&format!("api/c@{tag}")),
        ];
        engine.snapshot(&names).run().unwrap();
        let txgs: std::collections::BTreeSet<String> =
            names.iter().map(|n| txg(&zfs, n.as_str())).collect();
        assert_eq!(txgs.len(), 1, "{tag}: {txgs:?}");
    }
    // All or none: one bad member (already exists) and none is taken.
    let err = zfs
        .snapshot(&[snap("api/a@fresh"), snap("api/c@lzc")])
        .run()
        .unwrap_err();
    assert!(err.to_string().contains("lzc_snapshot"), "{err}");
    assert!(!zfs.exists("api/a@fresh").unwrap());
    zfs.snapshot_recursive(&[snap("api/a@rec")]).run().unwrap();
    assert_eq!(txg(&zfs, "api/a@rec"), txg(&zfs, "api/a/b@rec"));

    // Listing: kinds, depth, snapshots with facts.
    let rows = zfs
        .list(&["api"], DATASETS, &["used"], Depth::Max(1))
        .unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r.get("name").unwrap()).collect();
    assert_eq!(names, ["api", "api/a", "api/c"]);
    let snaps = zfs.snapshots(&[&ds("api/a")], true).unwrap();
    assert_eq!(snaps.len(), 6);
    assert!(snaps.windows(2).all(|w| w[0].createtxg <= w[1].createtxg));

    // Holds and releases; bookmarks.
    zfs.hold("keep", &[snap("api/c@lzc")]).run().unwrap();
    assert_eq!(zfs.snapshots(&[&ds("api/c")], false).unwrap()[0].holds, 1);
    assert!(
        zfs.destroy_snapshots(&[snap("api/c@lzc")]).run().is_err(),
        "a held snapshot is not destroyed"
    );
    zfs.release("keep", &[snap("api/c@lzc")]).run().unwrap();
    zfs.bookmark(
        &snap("api/c@lzc"),
        &BookmarkName::new("api/c#mark").unwrap(),
    )
    .run()
    .unwrap();
    let marks = zfs
        .list(&["api/c"], &[Kind::Bookmark], &[], Depth::Roots)
        .unwrap();
    assert_eq!(marks[0].get("name"), Some("api/c#mark"));

    // Destroy many snapshots in one batch, both ways.
    zfs.destroy_snapshots(&[snap("api/c@lzc"), snap("api/a@lzc")])
        .run()
        .unwrap();
    cli.destroy_snapshots(&[snap("api/c@cli"), snap("api/a@cli")])
        .run()
        .unwrap();
    assert!(!zfs.exists("api/c@cli").unwrap() && !zfs.exists("api/a@lzc").unwrap());

    // Rollback, and a whole tree rolled back atomically.
    std::fs::write("/api/a/b/f", "old").unwrap();
    zfs.snapshot_recursive(&[snap("api/a@t")]).run().unwrap();
    std::fs::write("/api/a/b/f", "new").unwrap();
    zfs.rollback(&snap("api/a/b@t"), false).run().unwrap();
    assert_eq!(read("/api/a/b/f"), "old");
    std::fs::write("/api/a/b/f", "new").unwrap();
    zfs.snapshot(&[snap("api/a/b@newer")]).run().unwrap();
    let plan = zfs.rollback_tree(&snap("api/a@t"), false).unwrap();
    assert!(plan.to_string().contains("zfs unmount api/a/b"), "{plan}");
    assert!(plan
        .run()
        .unwrap_err()
        .to_string()
        .contains("newer than api/a/b@t"));
    assert_eq!(
        read("/api/a/b/f"),
        "new",
        "a refused tree rollback changes nothing"
    );
    zfs.rollback_tree(&snap("api/a@t"), true)
        .unwrap()
        .run()
        .unwrap();
    assert_eq!(read("/api/a/b/f"), "old");
    assert!(!zfs.exists("api/a/b@newer").unwrap());

    // Clones (unmounted, both ways), promote, rename.
    let clones: Vec<DatasetName> = (0..3).map(|i| ds(&format!("api/k{i}"))).collect();
    zfs.clone_unmounted(&snap("api/a/b@t"), &clones)
        .run()
        .unwrap();
    cli.clone_unmounted(&snap("api/a/b@t"), &[ds("api/kc")])
        .run()
        .unwrap();
    for k in clones.iter().map(DatasetName::as_str).chain(["api/kc"]) {
        assert_eq!(zfs.get_one(k, "origin").unwrap(), "api/a/b@t");
        assert_eq!(zfs.get_one(k, "mounted").unwrap(), "no");
    }
    // Clones with their properties in the lzc_clone nvlist (strings,
    // numbers and index values), several at once; and the same through
    // `zfs clone -o`.
    let props = |canmount: &str| {
        [
            "compression=zstd",
            "recordsize=16384",
            "kld:note=a b",
            "mountpoint=/elsewhere",
        ]
        .iter()
        .map(|p| kld_zfs::props::Property::parse(p).unwrap())
        .chain([kld_zfs::props::Property::new("canmount", canmount).unwrap()])
        .collect::<Vec<_>>()
    };
    for (engine, prefix) in [(&zfs, "api/p"), (&cli, "api/q")] {
        let specs: Vec<kld_zfs::CloneSpec> = (0..3)
            .map(|i| kld_zfs::CloneSpec {
                snapshot: snap("api/a/b@t"),
                target: ds(&format!("{prefix}{i}")),
                props: props(if i == 0 { "off" } else { "noauto" }),
            })
            .collect();
        let plan = engine.clone_all(&specs);
        assert_eq!(plan.to_string().lines().count(), 3, "{plan}");
        plan.run().unwrap();
        for (i, spec) in specs.iter().enumerate() {
            let t = spec.target.as_str();
            assert_eq!(zfs.get_one(t, "compression").unwrap(), "zstd");
            assert_eq!(zfs.get_one(t, "recordsize").unwrap(), "16384");
            assert_eq!(zfs.get_one(t, "kld:note").unwrap(), "a b");
            assert_eq!(zfs.get_one(t, "mountpoint").unwrap(), "/elsewhere");
            let canmount = if i == 0 { "off" } else { "noauto" };
            assert_eq!(zfs.get_one(t, "canmount").unwrap(), canmount);
            assert_eq!(zfs.get_one(t, "mounted").unwrap(), "no");
            zfs.destroy(&spec.target, false).run().unwrap();
        }
    }
    // One that fails (its parent does not exist) fails the step; the
    // others are made.
    let specs = [
        kld_zfs::CloneSpec {
            snapshot: snap("api/a/b@t"),
            target: ds("api/nope/x"),
            props: Vec::new(),
        },
        kld_zfs::CloneSpec {
            snapshot: snap("api/a/b@t"),
            target: ds("api/y"),
            props: Vec::new(),
        },
    ];
    assert!(zfs.clone_all(&specs).run().is_err());
    assert!(zfs.exists("api/y").unwrap() && !zfs.exists("api/nope/x").unwrap());
    zfs.destroy(&ds("api/y"), false).run().unwrap();
    zfs.clone_snapshot(&snap("api/a/b@t"), &ds("api/m"), &[])
        .run()
        .unwrap();
    assert_eq!(read("/api/m/f"), "old");
    zfs.promote(&ds("api/m")).run().unwrap();
    assert_eq!(zfs.get_one("api/a/b", "origin").unwrap(), "api/m@t");
    zfs.rename(&ds("api/kc"), &ds("api/renamed")).run().unwrap();
    zfs.rename_snapshot(&snap("api/a@rec"), &snap("api/a@rec-renamed"))
        .run()
        .unwrap();
    assert!(zfs.exists("api/renamed").unwrap() && zfs.exists("api/a@rec-renamed").unwrap());

    // diff
    zfs.snapshot(&[snap("api/m@d")]).run().unwrap();
    std::fs::write("/api/m/g", "g").unwrap();
    let changes = zfs.diff(&snap("api/m@d"), None).unwrap();
    assert!(changes
        .iter()
        .any(|c| c.path == "/api/m/g" && c.kind == kld_zfs::diff::ChangeKind::Added));

    // send | receive: full, incremental, raw-capable flags, streamed.
    std::fs::write("/api/c/data", vec![7u8; 1 << 20]).unwrap();
    zfs.snapshot(&[snap("api/c@s1")]).run().unwrap();
    zfs.replicate(&Send::full(&snap("api/c@s1")), &Receive::into(&ds("api/r")))
        .run()
        .unwrap();
    std::fs::write("/api/c/more", "more").unwrap();
    zfs.snapshot(&[snap("api/c@s2")]).run().unwrap();
    zfs.replicate(
        &Send::incremental("@s1", &snap("api/c@s2"), false),
        &Receive::into(&ds("api/r")),
    )
    .run()
    .unwrap();
    assert_eq!(read("/api/r/more"), "more");
    // Resumable: a cut stream leaves a token, and resuming finishes it.
    let full = zfs
        .replicate(
            &Send::full(&snap("api/c@s2")),
            &Receive::into(&ds("api/partial")).resumable(),
        )
        .display();
    assert!(full.contains("zfs receive -s api/partial"), "{full}");
    let cut = kld_exec::Cmd::new("sh")
        .arg("-c")
        .arg("zfs send api/c@s2 | head -c 300000 | zfs receive -s api/partial")
        .run();
    assert!(cut.is_err(), "a cut stream must fail");
    let token = zfs
        .resume_token(&ds("api/partial"))
        .unwrap()
        .expect("a resume token");
    zfs.replicate(
        &Send::resume(&token),
        &Receive::into(&ds("api/partial")).resumable(),
    )
    .run()
    .unwrap();
    assert_eq!(zfs.resume_token(&ds("api/partial")).unwrap(), None);
    assert_eq!(
        std::fs::read("/api/partial/data").unwrap(),
        vec![7u8; 1 << 20]
    );

    // Raw: an encrypted dataset travels encrypted; the copy has no key.
    std::fs::write("/tmp/key", "correct horse battery").unwrap();
    let enc = [
        Property::parse("encryption=on").unwrap(),
        Property::parse("keyformat=passphrase").unwrap(),
        Property::parse("keylocation=file:///tmp/key").unwrap(),
    ];
    zfs.create(&ds("api/secret"), &enc, false).run().unwrap();
    std::fs::write("/api/secret/s", "classified").unwrap();
    zfs.snapshot(&[snap("api/secret@1")]).run().unwrap();
    let raw = Send::full(&snap("api/secret@1")).raw();
    zfs.replicate(&raw, &Receive::into(&ds("api/vault")))
        .run()
        .unwrap();
    assert_eq!(
        zfs.get_one("api/vault", "encryption").unwrap(),
        "aes-256-gcm"
    );
    assert_eq!(
        zfs.get_one("api/vault", "keystatus").unwrap(),
        "unavailable"
    );

    // Pools.
    let pools = zfs.pools(&["health"]).unwrap();
    assert_eq!(pools[0].get("health"), Some("ONLINE"));
    let status = zfs.pool_status(&PoolName::new("api").unwrap()).unwrap();
    assert_eq!(status.state, "ONLINE");
    assert!(matches!(
        zfs.pool_status(&PoolName::new("nopool").unwrap()),
        Err(kld_zfs::Error::NotFound(_))
    ));

    // destroy: one dataset, never more than named.
    zfs.destroy(&ds("api/renamed"), false).run().unwrap();
    assert!(
        zfs.destroy(&ds("api/a"), false).run().is_err(),
        "api/a has children"
    );
    println!("every check passed");
}
