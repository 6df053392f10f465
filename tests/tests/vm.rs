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
        .timeout(Duration::from_secs(1800));
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
    kdf_space,
    kdir_datasets,
    kernel_wireguard,
    kwg_kernel_hub,
    ksnap_create_list,
    ksnap_rollback_destroy_prune,
    nftables_drop_and_accept,
    pool_mirror_send_receive_scrub,
}
