//! The pools check: each pool's state, its vdevs' states and error
//! counters, its data errors, a resilver, and its capacity.

use kld_zfs::scan::{data_errors, Scan, ScanKind};

use super::config::Pools;
use super::sources::Sources;
use super::{CheckName, CheckResult, Failed, Measurement, Status};

/// The status a pool state earns.
fn state_status(state: &str) -> Status {
    match state {
        "ONLINE" => Status::Ok,
        "DEGRADED" => Status::Warning,
        "FAULTED" | "UNAVAIL" | "SUSPENDED" | "REMOVED" => Status::Critical,
        _ => Status::Unknown,
    }
}

pub(super) fn check(config: &Pools, sources: &Sources) -> Result<CheckResult, Failed> {
    let (statuses, space) = std::thread::scope(|scope| {
        let space = scope.spawn(|| sources.pool_space());
        (
            sources.pool_status(),
            space.join().expect("zpool list thread"),
        )
    });
    let (statuses, space) = (statuses?, space?);
    if statuses.is_empty() {
        return Err(Failed::Missing("no pool is imported".into()));
    }
    let mut result = CheckResult::new(CheckName::Pools);
    let mut notable = Vec::new();
    for pool in statuses {
        let name = &pool.pool;
        let status = state_status(&pool.state);
        result.values.push(
            Measurement::new(
                "kld_pool_online",
                "Whether the pool's state is ONLINE (1) or not (0).",
                f64::from(u8::from(status == Status::Ok)),
            )
            .label("pool", name),
        );
        if status != Status::Ok {
            notable.push(format!("{name} {}", pool.state));
            let detail = match pool.status.as_deref() {
                Some(why) => format!("{name} is {}: {}", pool.state, why.replace('\n', " ")),
                None => format!("{name} is {}", pool.state),
            };
            result.finding(status, detail);
        }
        for vdev in pool.vdevs.iter().filter(|v| v.depth > 0) {
            if !vdev.state.is_empty() && vdev.state != "ONLINE" {
                result.finding(
                    Status::Ok,
                    format!("{name}: {} is {} {}", vdev.name, vdev.state, vdev.note)
                        .trim_end()
                        .to_owned(),
                );
            }
            let Some((read, write, checksum)) = vdev.errors else {
                continue;
            };
            for (kind, count) in [("read", read), ("write", write), ("checksum", checksum)] {
                result.values.push(
                    Measurement::new(
                        "kld_pool_vdev_errors",
                        "Read, write or checksum errors zpool status counts on a vdev.",
                        count as f64,
                    )
                    .label("pool", name)
                    .label("vdev", &vdev.name)
                    .label("type", kind),
                );
            }
            if read + write + checksum > 0 {
                result.finding(
                    Status::Warning,
                    format!(
                        "{name}: {} has {read} read, {write} write and {checksum} checksum errors",
                        vdev.name
                    ),
                );
            }
        }
        match data_errors(&pool.errors) {
            Some(0) => {}
            Some(n) => {
                notable.push(format!("{name} {n} data errors"));
                result.finding(
                    Status::Critical,
                    format!("{name}: {n} data errors (zpool status -v {name} lists the files)"),
                );
            }
            None => result.finding(
                Status::Unknown,
                format!("{name}: unreadable errors line {:?}", pool.errors),
            ),
        }
        if let Some(Ok(Scan::InProgress {
            kind: ScanKind::Resilver,
            percent_done,
            ..
        })) = pool.scan.as_deref().map(Scan::parse)
        {
            let done = percent_done.map_or(String::new(), |p| format!(", {p:.1}% done"));
            notable.push(format!("{name} resilvering"));
            result.finding(Status::Warning, format!("{name} is resilvering{done}"));
        }
    }
    for pool in space {
        let name = &pool.name;
        result.values.extend([
            Measurement::new(
                "kld_pool_capacity_ratio",
                "Share of the pool's space that is allocated (0 to 1).",
                pool.capacity as f64 / 100.0,
            )
            .label("pool", name),
            Measurement::new("kld_pool_size_bytes", "The pool's size.", pool.size as f64)
                .label("pool", name),
            Measurement::new(
                "kld_pool_allocated_bytes",
                "Space allocated in the pool.",
                pool.allocated as f64,
            )
            .label("pool", name),
        ]);
        let status = if pool.capacity >= u64::from(config.capacity_critical) {
            Status::Critical
        } else if pool.capacity >= u64::from(config.capacity_warning) {
            Status::Warning
        } else {
            Status::Ok
        };
        if status != Status::Ok {
            notable.push(format!("{name} {}% full", pool.capacity));
            result.finding(
                status,
                format!(
                    "{name} is {}% full (warning at {}%, critical at {}%)",
                    pool.capacity, config.capacity_warning, config.capacity_critical
                ),
            );
        }
    }
    result.summary = if notable.is_empty() {
        "ONLINE".into()
    } else {
        notable.join(", ")
    };
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_states() {
        assert_eq!(state_status("ONLINE"), Status::Ok);
        assert_eq!(state_status("DEGRADED"), Status::Warning);
        assert_eq!(state_status("FAULTED"), Status::Critical);
        assert_eq!(state_status("SUSPENDED"), Status::Critical);
        assert_eq!(state_status("WEIRD"), Status::Unknown);
    }
}
