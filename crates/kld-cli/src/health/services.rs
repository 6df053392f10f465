//! The services check: failed systemd units, and the state of the units
//! the configuration names, asked of systemd over D-Bus (no `systemctl`
//! output is parsed).

use zbus::blocking::{Connection, Proxy};
use zbus::zvariant::OwnedObjectPath;

use super::config::Services;
use super::{CheckName, CheckResult, Failed, Measurement, Status};

/// A unit as `ListUnits*` describes it: name, description, load state,
/// active state, sub state, followed unit, object path, queued job id, job
/// type, job path.
type Unit = (
    String,
    String,
    String,
    String,
    String,
    String,
    OwnedObjectPath,
    u32,
    String,
    OwnedObjectPath,
);

/// The units systemd lists as failed, and the named ones.
fn ask_systemd(named: &[String]) -> Result<(Vec<Unit>, Vec<Unit>), Failed> {
    let missing = |e: zbus::Error| Failed::Missing(format!("no system D-Bus here: {e}"));
    let conn = Connection::system().map_err(missing)?;
    let proxy = Proxy::new(
        &conn,
        "org.freedesktop.systemd1",
        "/org/freedesktop/systemd1",
        "org.freedesktop.systemd1.Manager",
    )
    .map_err(|e| Failed::Error(format!("systemd over D-Bus: {e}")))?;
    let call = |method: &str, arg: &[String]| -> Result<Vec<Unit>, Failed> {
        proxy.call(method, &(arg,)).map_err(|e| match &e {
            zbus::Error::MethodError(name, _, _)
                if name.as_str() == "org.freedesktop.DBus.Error.ServiceUnknown" =>
            {
                Failed::Missing("systemd is not running here (not on the system bus)".into())
            }
            _ => Failed::Error(format!("systemd over D-Bus: {method}: {e}")),
        })
    };
    let failed = call("ListUnitsFiltered", &["failed".to_owned()])?;
    let named = if named.is_empty() {
        Vec::new()
    } else {
        call("ListUnitsByNames", named)?
    };
    Ok((failed, named))
}

pub(super) fn check(config: &Services) -> Result<CheckResult, Failed> {
    let (failed, named) = ask_systemd(&config.units)?;
    Ok(judge(config, &failed, &named))
}

fn judge(config: &Services, failed: &[Unit], named: &[Unit]) -> CheckResult {
    let mut result = CheckResult::new(CheckName::Services);
    let mut running = 0;
    for unit in named {
        let (name, load, active, sub) = (&unit.0, &unit.2, &unit.3, &unit.4);
        let up = active == "active";
        running += usize::from(up);
        result.values.push(
            Measurement::new(
                "kld_systemd_unit_active",
                "Whether a unit the configuration names is active (1) or not (0).",
                f64::from(u8::from(up)),
            )
            .label("unit", name),
        );
        if load == "not-found" {
            result.finding(Status::Critical, format!("{name} is not installed"));
        } else if !up {
            result.finding(Status::Critical, format!("{name} is {active} ({sub})"));
        }
    }
    let others: Vec<&Unit> = failed
        .iter()
        .filter(|u| !config.units.contains(&u.0))
        .collect();
    for unit in &others {
        result.finding(config.failed, format!("{} failed: {}", unit.0, unit.1));
    }
    result.values.push(Measurement::new(
        "kld_systemd_units_failed",
        "Units systemd lists as failed.",
        failed.len() as f64,
    ));
    let failed_text = match failed.len() {
        0 => "none failed".to_owned(),
        n => format!("{n} failed"),
    };
    result.summary = if named.is_empty() {
        failed_text
    } else if others.is_empty() {
        format!("{running}/{} running", named.len())
    } else {
        format!("{running}/{} running, {failed_text}", named.len())
    };
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(name: &str, load: &str, active: &str) -> Unit {
        let root = OwnedObjectPath::try_from("/").unwrap();
        (
            name.into(),
            format!("{name} description"),
            load.into(),
            active.into(),
            "dead".into(),
            String::new(),
            root.clone(),
            0,
            String::new(),
            root,
        )
    }

    fn config(units: &[&str]) -> Services {
        Services {
            units: units.iter().map(|u| u.to_string()).collect(),
            failed: Status::Warning,
            missing: None,
        }
    }

    #[test]
    fn named_units_and_failed_ones() {
        let c = config(&["ssh.service", "zed.service"]);
        let named = [
            unit("ssh.service", "loaded", "active"),
            unit("zed.service", "loaded", "active"),
        ];
        let r = judge(&c, &[], &named);
        assert_eq!((r.status, r.summary.as_str()), (Status::Ok, "2/2 running"));

        let r = judge(&c, &[unit("x.service", "loaded", "failed")], &named);
        assert_eq!(r.status, Status::Warning);
        assert_eq!(r.summary, "2/2 running, 1 failed");

        let named = [
            unit("ssh.service", "loaded", "failed"),
            unit("zed.service", "not-found", "inactive"),
        ];
        let r = judge(&c, &[unit("ssh.service", "loaded", "failed")], &named);
        assert_eq!(r.status, Status::Critical);
        assert_eq!(r.summary, "0/2 running");
        assert_eq!(r.details.len(), 2, "{:?}", r.details);
    }

    #[test]
    fn without_named_units() {
        let r = judge(&config(&[]), &[], &[]);
        assert_eq!((r.status, r.summary.as_str()), (Status::Ok, "none failed"));
    }
}
