//! The snapshots check: the newest snapshot of every dataset a policy names
//! (and of its descendants, when the policy says so) is recent enough.

use super::config::SnapshotPolicy;
use super::sources::Sources;
use super::{age, age_status, CheckName, CheckResult, Failed, Measurement, Status};

pub(super) fn check(policies: &[SnapshotPolicy], sources: &Sources) -> Result<CheckResult, Failed> {
    if policies.is_empty() {
        return Err(Failed::Missing(
            "no snapshot policy is configured ([[snapshots]] in the configuration)".into(),
        ));
    }
    let datasets = sources.datasets()?;
    let mut result = CheckResult::new(CheckName::Snapshots);
    let (mut checked, mut stale) = (0usize, 0usize);
    for policy in policies {
        let prefix = format!("{}/", policy.dataset);
        let covered: Vec<(&String, &Vec<_>)> = datasets
            .iter()
            .filter(|(name, _)| {
                **name == policy.dataset || (policy.recursive && name.starts_with(&prefix))
            })
            .collect();
        if covered.is_empty() {
            stale += 1;
            result.finding(
                Status::Critical,
                format!("{}: no such dataset", policy.dataset),
            );
            continue;
        }
        for (name, snaps) in covered {
            checked += 1;
            result.values.push(
                Measurement::new(
                    "kld_dataset_snapshots",
                    "Snapshots of a dataset a snapshot policy covers.",
                    snaps.len() as f64,
                )
                .label("dataset", name),
            );
            let (newest_age, what) = match snaps.last() {
                Some(newest) => {
                    let newest_age = sources.now.saturating_sub(newest.creation);
                    result.values.push(
                        Measurement::new(
                            "kld_dataset_newest_snapshot_age_seconds",
                            "Age of the newest snapshot of a dataset a snapshot policy covers.",
                            newest_age as f64,
                        )
                        .label("dataset", name),
                    );
                    (
                        newest_age,
                        format!(
                            "newest snapshot @{} is {} old (warning after {})",
                            newest.name,
                            age(newest_age),
                            age(policy.warning_age)
                        ),
                    )
                }
                None => (u64::MAX, "has no snapshot".to_owned()),
            };
            let status = age_status(newest_age, policy.warning_age, policy.critical_age);
            if status != Status::Ok {
                stale += 1;
                result.finding(status, format!("{name}: {what}"));
            }
        }
    }
    result.summary = if stale == 0 {
        format!("{checked}/{checked} recent")
    } else {
        format!("{stale} stale")
    };
    Ok(result)
}
