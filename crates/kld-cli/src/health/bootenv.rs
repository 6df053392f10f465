//! The boot environment check: the pool's next boot (`bootfs`) is a boot
//! environment that exists, and a switch to another one is reported until
//! the machine boots it.

use kld_be::{BootEnvironments, Locate};

use super::config::Bootenv;
use super::sources::Sources;
use super::{CheckName, CheckResult, Failed, Measurement, Status};

pub(super) fn check(config: &Bootenv, sources: &Sources) -> Result<CheckResult, Failed> {
    let bes =
        BootEnvironments::locate(sources.zfs.clone(), Locate::Running).map_err(|e| match e {
            kld_be::Error::NoRoot(why) => Failed::Missing(why),
            e => Failed::Error(e.to_string()),
        })?;
    let state = bes.state().map_err(|e| Failed::Error(e.to_string()))?;
    let mut result = CheckResult::new(CheckName::Bootenv);
    let running = state.active().map(|be| be.name.to_string());
    let next = state.next_boot().map(|be| be.name.to_string());
    let running_text = running.clone().unwrap_or_else(|| "?".into());
    match (&state.bootfs, &next) {
        (None, _) => result.finding(
            Status::Warning,
            format!(
                "pool {} has no bootfs: the boot loader chooses what boots",
                state.pool
            ),
        ),
        (Some(bootfs), None) => result.finding(
            Status::Critical,
            format!(
                "pool {}'s bootfs is {bootfs}, which is not a boot environment under {}",
                state.pool, state.root
            ),
        ),
        (Some(_), Some(next)) => {
            let pending = running.as_deref() != Some(next.as_str());
            result.values.push(
                Measurement::new(
                    "kld_boot_environment_switch_pending",
                    "Whether the next boot starts another boot environment than the running one.",
                    f64::from(u8::from(pending)),
                )
                .label("running", &running_text)
                .label("next", next),
            );
            if pending {
                result.finding(
                    config.pending,
                    format!("running {running_text}, the next boot starts {next}"),
                );
            }
        }
    }
    result.summary = match next {
        Some(next) if Some(&next) != running.as_ref() => format!("{running_text} (next: {next})"),
        _ => running_text,
    };
    Ok(result)
}
