//! The replication check: how far each replication target lags, as the age
//! of the newest snapshot it shares with its source (both on this host), or
//! of the newest snapshot it received.

use std::collections::BTreeSet;

use super::config::Replication;
use super::sources::Sources;
use super::{age, age_status, CheckName, CheckResult, Failed, Measurement, Status};

pub(super) fn check(targets: &[Replication], sources: &Sources) -> Result<CheckResult, Failed> {
    if targets.is_empty() {
        return Err(Failed::Missing(
            "no replication target is configured ([[replication]] in the configuration)".into(),
        ));
    }
    let datasets = sources.datasets()?;
    let mut result = CheckResult::new(CheckName::Replication);
    let mut worst_lag: Option<u64> = None;
    for target in targets {
        let name = &target.target;
        let Some(received) = datasets.get(name) else {
            result.finding(Status::Critical, format!("{name}: no such dataset"));
            continue;
        };
        let newest = match &target.source {
            Some(source) => {
                let Some(sent) = datasets.get(source) else {
                    result.finding(
                        Status::Critical,
                        format!("{name}: its source {source} does not exist"),
                    );
                    continue;
                };
                let guids: BTreeSet<u64> = sent.iter().map(|s| s.guid).collect();
                received.iter().rev().find(|s| guids.contains(&s.guid))
            }
            None => received.last(),
        };
        let Some(newest) = newest else {
            let what = match &target.source {
                Some(source) => format!("shares no snapshot with {source}"),
                None => "has no snapshot".to_owned(),
            };
            let status = age_status(u64::MAX, target.warning_lag, target.critical_lag);
            result.finding(status, format!("{name}: {what}"));
            worst_lag = Some(u64::MAX);
            continue;
        };
        let lag = sources.now.saturating_sub(newest.creation);
        worst_lag = Some(worst_lag.map_or(lag, |w| w.max(lag)));
        result.values.push(
            Measurement::new(
                "kld_replication_lag_seconds",
                "Age of the newest snapshot a replication target shares with its source.",
                lag as f64,
            )
            .label("target", name),
        );
        let status = age_status(lag, target.warning_lag, target.critical_lag);
        if status != Status::Ok {
            result.finding(
                status,
                format!(
                    "{name}: lag {} (newest common snapshot @{}; warning after {})",
                    age(lag),
                    newest.name,
                    age(target.warning_lag)
                ),
            );
        }
    }
    result.summary = match worst_lag {
        Some(u64::MAX) => "no common snapshot".into(),
        Some(lag) => format!("lag {}", age(lag)),
        None => "target missing".into(),
    };
    Ok(result)
}
