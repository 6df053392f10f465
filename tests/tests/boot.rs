//! The boot tier: boot environments proven by booting them. A real
//! ZFS-on-root Debian system boots BE `a` through Debian's zfs initramfs
//! (`root=zfs:AUTO`), makes and activates BE `b`, and the next boot runs `b`;
//! `kbe rollback` and another boot bring back `a`. kst's services and
//! boot-environment checks run against that real systemd (over D-Bus) and
//! those real boot environments.

use kld_tests::vm::system::{System, SystemImage};

fn boot(system: &System, script: &str) -> String {
    let run = system
        .boot(script, &mut std::io::stderr())
        .unwrap_or_else(|e| panic!("the system did not boot: {e}"));
    let out = run.output_str();
    assert_eq!(run.exit_code, 0, "the script failed:\n{out}");
    out
}

#[test]
fn a_new_boot_environment_boots_and_rollback_returns() {
    let image = SystemImage::ensure(&mut |m| eprintln!("boot tier: {m}")).expect("system image");
    let system = System::new(&image).expect("a fresh system disk");

    let out = boot(
        &system,
        r#"
        echo "running: $(kbe current)"
        [ "$(kbe current)" = a ]
        [ "$(findmnt -n -o SOURCE /)" = rpool/ROOT/a ]
        [ "$(cat /proc/1/comm)" = systemd ]
        kbe list
        kbe create b
        mkdir -p /mnt/b
        kbe mount b /mnt/b
        echo b > /mnt/b/etc/kld-marker
        kbe unmount b
        kbe activate b
        [ "$(zpool get -H -o value bootfs rpool)" = rpool/ROOT/b ]
        kbe list -v
        systemd-run --unit=kld-broken --property=Type=oneshot --wait false || true
        [ "$(systemctl is-failed kld-broken.service)" = failed ]
        printf '[services]\nunits = ["dbus.service"]\n' > /tmp/kst.toml
        kst_case() {
            case=$1; shift
            for format in human json prometheus; do
                flag=; [ $format = human ] || flag=--$format
                code=0; kst $flag "$@" > /tmp/kst.out || code=$?
                echo "=== kst $case $format exit=$code"; cat /tmp/kst.out; echo "=== end"
            done
        }
        kst_case services --config /tmp/kst.toml --check services
        kst_case pending --check bootenv
        "#,
    );
    assert!(out.contains("running: a"), "{out}");
    // The same boot's kst outputs: services from the real systemd over
    // D-Bus, with a unit that failed; the pending switch to b.
    check_kst(&out);
    let json = |case: &str| kst_json(&out, case);
    let services = json("services");
    assert_eq!(services["status"], "WARNING", "{services:#}");
    let check = &services["checks"][0];
    // Only the failed unit made here is known; the image may have others.
    let summary = check["summary"].as_str().unwrap();
    assert!(summary.starts_with("1/1 running, "), "{check:#}");
    assert!(
        check["details"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d.as_str().unwrap().starts_with("kld-broken.service failed")),
        "{check:#}"
    );
    let pending = json("pending");
    assert_eq!(pending["status"], "WARNING", "{pending:#}");
    assert_eq!(pending["checks"][0]["summary"], "a (next: b)");

    let out = boot(
        &system,
        r#"
        echo "running: $(kbe current)"
        [ "$(kbe current)" = b ]
        [ "$(cat /etc/kld-marker)" = b ]
        kbe list -H
        kbe rollback
        "#,
    );
    assert!(out.contains("running: b"), "{out}");

    let out = boot(
        &system,
        r#"
        echo "running: $(kbe current)"
        [ "$(kbe current)" = a ]
        [ ! -e /etc/kld-marker ]
        kbe list -H
        code=0; kst --json --check bootenv --check pools > /tmp/kst.out || code=$?
        echo "=== kst settled json exit=$code"; cat /tmp/kst.out; echo "=== end"
        "#,
    );
    assert!(out.contains("running: a"), "{out}");
    check_kst(&out);
    let settled = kst_json(&out, "settled");
    assert_eq!(settled["status"], "OK", "{settled:#}");
    assert_eq!(settled["checks"][1]["summary"], "a", "{settled:#}");
}

/// Every kst output in `log` is valid (schema, promtool).
fn check_kst(log: &str) {
    kld_tests::kst::check_all(log).unwrap_or_else(|e| panic!("{e}"));
}

/// The JSON document of `case` in `log`.
fn kst_json(log: &str, case: &str) -> serde_json::Value {
    let out = kld_tests::kst::outputs(log)
        .into_iter()
        .find(|o| o.case == case && o.format == "json")
        .unwrap_or_else(|| panic!("no kst JSON for {case} in:\n{log}"));
    serde_json::from_str(&out.text).unwrap()
}

/// The Debian package `cargo xtask dist` builds installs on the booted
/// ZFS-on-root host with `dpkg -i` (no network: what it depends on is in
/// the image), its binaries run from /usr/bin, and its units are loaded and
/// enabled; kst.timer, started by the installation, fires and the textfile
/// kst.service writes for node_exporter passes `promtool check metrics`.
#[test]
fn the_package_installs_on_the_booted_host() {
    let deb = kld_tests::dist::package().expect("cargo xtask dist");
    let image = SystemImage::ensure(&mut |m| eprintln!("boot tier: {m}")).expect("system image");
    let system = System::new(&image)
        .expect("a fresh system disk")
        .with_file(&deb);
    let name = deb
        .file_name()
        .and_then(|n| n.to_str())
        .expect("a file name");
    let out = boot(
        &system,
        &format!(
            r#"
        dpkg -i /run/kld-job/files/{name}
        [ "$(dpkg-query -W -f '${{Status}}' kld)" = "install ok installed" ]
        /usr/bin/ksnap --version
        echo "installed kbe says: $(/usr/bin/kbe current)"
        for unit in $(dpkg-query -L kld | grep '^/lib/systemd/system/.'); do
            unit=${{unit##*/}}
            echo "$unit: $(systemctl show -P LoadState "$unit") $(systemctl is-enabled "$unit")"
        done
        # No zones applied yet: the boot unit is skipped, not failed.
        systemctl start kld-nft.service
        echo "kld-nft.service condition: $(systemctl show -P ConditionResult kld-nft.service)"
        # The package started kst.timer: wait until it has run kst once.
        echo "kst.timer: $(systemctl is-active kst.timer)"
        prom=/var/lib/prometheus/node-exporter/kst.prom
        i=0
        until [ -s $prom ] && [ "$(systemctl show -P ExecMainExitTimestampMonotonic kst.service)" != 0 ]; do
            i=$((i + 1)); [ $i -le 300 ]; sleep 1
        done
        echo "kst.service: $(systemctl show -P Result kst.service)"
        echo "=== kst timer prometheus exit=$(systemctl show -P ExecMainStatus kst.service)"
        cat $prom
        echo "=== end"
        "#
        ),
    );
    assert!(out.contains("installed kbe says: a"), "{out}");
    assert!(out.contains("kld-nft.service: loaded enabled"), "{out}");
    assert!(out.contains("kld-nft.service condition: no"), "{out}");
    // kst.timer fired and the textfile it wrote passes promtool.
    assert!(out.contains("kst.timer: active"), "{out}");
    assert!(out.contains("kst.service: success"), "{out}");
    check_kst(&out);
}
