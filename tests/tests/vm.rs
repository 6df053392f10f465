//! The VM tier: every scenario in `tests/vm/*.sh` runs on real OpenZFS in one
//! shared boot, and each is reported as a test of its own.
//!
//! Run one scenario without the rest: `cargo xtask vm scenario NAME`.

use std::sync::LazyLock;
use std::time::Duration;

use kld_tests::vm::{workspace_root, Batch, BatchResult, Vm};

fn scenario_dir() -> std::path::PathBuf {
    workspace_root().join("tests/vm")
}

static RESULTS: LazyLock<Result<BatchResult, String>> = LazyLock::new(|| {
    let mut batch = Batch::new();
    batch.add_dir(&scenario_dir()).map_err(|e| e.to_string())?;
    let vm = Vm::new()
        .disk_size(1 << 30)
        // The fault-injection scenarios kill commands at every step: about
        // half of the batch's time under TCG.
        .timeout(Duration::from_secs(3000));
    batch
        .run(vm, &mut std::io::sink())
        .map_err(|e| e.to_string())
});

fn check(name: &str) {
    match &*RESULTS {
        Ok(results) => results.assert_passed(name),
        Err(e) => panic!("the VM batch did not run: {e}"),
    }
}

macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        $( #[test] fn $name() { check(stringify!($name)); } )*

        /// A scenario file without a test here would run unreported.
        #[test]
        fn every_scenario_file_has_a_test() {
            let mut batch = Batch::new();
            batch.add_dir(&scenario_dir()).unwrap();
            let mut files = batch.names();
            files.sort();
            let mut tests = vec![$(stringify!($name)),*];
            tests.sort();
            assert_eq!(files, tests);
        }
    };
}

scenarios! {
    kbe_environments,
    kbe_faults,
    kst_health,
    kdf_space,
    kdir_datasets,
    kdir_faults,
    kernel_wireguard,
    kseal_kexport_zfs,
    kwg_kernel_hub,
    ksnap_create_list,
    ksnap_faults,
    ksnap_rollback_destroy_prune,
    nftables_drop_and_accept,
    pool_mirror_send_receive_scrub,
}

/// kst's outputs in `kst_health`: every JSON document follows the shipped
/// schema and every Prometheus text passes `promtool check metrics`, with
/// the statuses the scenario expects.
#[test]
fn kst_health_outputs_validate() {
    check("kst_health");
    let results = RESULTS.as_ref().expect("the batch ran");
    let log = &results.results["kst_health"].output;
    let all = kld_tests::kst::check_all(log).unwrap_or_else(|e| panic!("{e}"));
    let status = |case: &str| {
        let out = all
            .iter()
            .find(|o| o.case == case && o.format == "json")
            .unwrap_or_else(|| panic!("no JSON output for case {case}"));
        let doc: serde_json::Value = serde_json::from_str(&out.text).unwrap();
        doc["status"].as_str().unwrap().to_owned()
    };
    for (case, want) in [
        ("healthy", "OK"),
        ("asked-for-disks", "UNKNOWN"),
        ("stale", "CRITICAL"),
        ("stale-warning", "WARNING"),
        ("degraded", "WARNING"),
        ("repaired", "WARNING"),
        ("data-errors", "CRITICAL"),
        ("full", "WARNING"),
        ("full-critical", "CRITICAL"),
        ("wg-one-down", "WARNING"),
        ("wg-up", "OK"),
        ("wg-none", "UNKNOWN"),
    ] {
        assert_eq!(status(case), want, "case {case}");
    }
    assert_eq!(all.len(), 36, "three formats of twelve cases");
}
