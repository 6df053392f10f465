//! The disks check: SMART health and the attributes that predict failure,
//! read with `smartctl --json` (one run per disk, all at once).

use kld_exec::Cmd;
use serde_json::Value;

use super::config::Disks;
use super::{CheckName, CheckResult, Failed, Measurement, Status};

/// ATA attributes whose raw value is a count of bad sectors.
const BAD_SECTOR_ATTRIBUTES: [(u64, &str); 3] = [
    (5, "reallocated sectors"),
    (197, "pending sectors"),
    (198, "offline uncorrectable sectors"),
];

pub(super) fn check(config: &Disks) -> Result<CheckResult, Failed> {
    let devices = if config.devices.is_empty() {
        scan()?
    } else {
        config.devices.iter().map(|d| (d.clone(), None)).collect()
    };
    let reports: Vec<(String, Result<Value, Failed>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = devices
            .iter()
            .map(|(name, kind)| (name, scope.spawn(|| smartctl(name, kind.as_deref()))))
            .collect();
        handles
            .into_iter()
            .map(|(name, h)| (name.clone(), h.join().expect("smartctl thread")))
            .collect()
    });
    let mut result = CheckResult::new(CheckName::Disks);
    let (mut judged, mut bad) = (0, 0);
    for (device, report) in reports {
        let mut disk = CheckResult::new(CheckName::Disks);
        match report {
            Ok(report) if !judge(&device, &report, config, &mut disk) => continue,
            Ok(_) => {}
            Err(Failed::Missing(reason) | Failed::Error(reason)) => {
                disk.finding(Status::Unknown, format!("{device}: {reason}"));
            }
        }
        judged += 1;
        bad += usize::from(disk.status != Status::Ok);
        result.status = result.status.worst(disk.status);
        result.details.extend(disk.details);
        result.values.extend(disk.values);
    }
    if judged == 0 {
        return Err(Failed::Missing(
            "no disk here reports SMART (virtual disks do not)".into(),
        ));
    }
    result.summary = if bad == 0 {
        "all clean".into()
    } else {
        format!("{bad} of {judged} disks need attention")
    };
    Ok(result)
}

/// The disks `smartctl --scan-open` finds, with their device types.
fn scan() -> Result<Vec<(String, Option<String>)>, Failed> {
    let report = run(Cmd::new("smartctl").args(["--scan-open", "--json"]))?;
    Ok(report["devices"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|d| {
            let name = d["name"].as_str()?.to_owned();
            Some((name, d["type"].as_str().map(str::to_owned)))
        })
        .collect())
}

fn smartctl(device: &str, kind: Option<&str>) -> Result<Value, Failed> {
    let mut cmd = Cmd::new("smartctl").args(["--json", "--info", "--health", "--attributes"]);
    if let Some(kind) = kind {
        cmd = cmd.args(["-d", kind]);
    }
    run(cmd.arg(device))
}

/// Runs smartctl, whose exit status is a bit mask of findings, and reads
/// its JSON.
fn run(cmd: Cmd) -> Result<Value, Failed> {
    let out = cmd.run_any_status().map_err(|e| match e {
        kld_exec::Error::Spawn { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            Failed::Missing("smartctl is not installed (Debian package smartmontools)".into())
        }
        e => Failed::Error(e.to_string()),
    })?;
    serde_json::from_slice(&out.stdout)
        .map_err(|e| Failed::Error(format!("{}: unreadable JSON: {e}", cmd.display())))
}

/// Judges one disk's smartctl report into `result`; false when the disk
/// has no SMART to judge.
fn judge(device: &str, report: &Value, config: &Disks, result: &mut CheckResult) -> bool {
    let status_bits = report["smartctl"]["exit_status"].as_u64().unwrap_or(0);
    if status_bits & 0b11 != 0 {
        // Bits 0 and 1: the command line failed or the device did not open.
        let why = report["smartctl"]["messages"][0]["string"]
            .as_str()
            .unwrap_or("smartctl could not read it");
        if report["smart_support"]["available"] == Value::Bool(false)
            || why.contains("Unable to detect device type")
        {
            return false;
        }
        result.finding(Status::Unknown, format!("{device}: {why}"));
        return true;
    }
    if report["smart_support"]["available"] == Value::Bool(false) {
        return false;
    }
    let label = |m: Measurement| m.label("device", device);
    if let Some(passed) = report["smart_status"]["passed"].as_bool() {
        result.values.push(label(Measurement::new(
            "kld_disk_smart_passed",
            "Whether the disk's SMART overall health self-assessment passed (1) or not (0).",
            f64::from(u8::from(passed)),
        )));
        if !passed {
            result.finding(
                Status::Critical,
                format!("{device}: SMART says the disk is failing"),
            );
        }
    }
    if status_bits & (1 << 4) != 0 {
        result.finding(
            Status::Critical,
            format!("{device}: a pre-failure attribute is at or below its threshold"),
        );
    } else if status_bits & (1 << 5) != 0 {
        result.finding(
            Status::Warning,
            format!("{device}: an attribute was at or below its threshold in the past"),
        );
    }
    if status_bits & (1 << 6) != 0 {
        result.finding(
            Status::Warning,
            format!("{device}: the device error log has errors"),
        );
    }
    if status_bits & (1 << 7) != 0 {
        result.finding(Status::Warning, format!("{device}: a self-test failed"));
    }
    if let Some(t) = report["temperature"]["current"].as_u64() {
        result.values.push(label(Measurement::new(
            "kld_disk_temperature_celsius",
            "The disk's current temperature.",
            t as f64,
        )));
        if t > u64::from(config.temperature_warning) {
            result.finding(
                Status::Warning,
                format!(
                    "{device}: {t} °C (warning above {} °C)",
                    config.temperature_warning
                ),
            );
        }
    }
    let attributes = report["ata_smart_attributes"]["table"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    for (id, what) in BAD_SECTOR_ATTRIBUTES {
        let Some(raw) = attributes
            .iter()
            .find(|a| a["id"].as_u64() == Some(id))
            .and_then(|a| a["raw"]["value"].as_u64())
        else {
            continue;
        };
        result.values.push(label(
            Measurement::new(
                "kld_disk_bad_sectors",
                "Raw value of an ATA attribute that counts bad sectors.",
                raw as f64,
            )
            .label("attribute", id.to_string()),
        ));
        if raw > 0 {
            result.finding(Status::Warning, format!("{device}: {raw} {what}"));
        }
    }
    let nvme = &report["nvme_smart_health_information_log"];
    if let Some(warning) = nvme["critical_warning"].as_u64().filter(|w| *w != 0) {
        result.finding(
            Status::Critical,
            format!("{device}: NVMe critical warning {warning:#04x}"),
        );
    }
    if let Some(errors) = nvme["media_errors"].as_u64() {
        result.values.push(label(Measurement::new(
            "kld_disk_media_errors",
            "Media and data integrity errors an NVMe disk counted.",
            errors as f64,
        )));
        if errors > 0 {
            result.finding(Status::Warning, format!("{device}: {errors} media errors"));
        }
    }
    if let Some(used) = nvme["percentage_used"].as_u64().filter(|u| *u >= 100) {
        result.finding(
            Status::Warning,
            format!("{device}: {used}% of its rated endurance used"),
        );
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Disks {
        Disks {
            devices: Vec::new(),
            temperature_warning: 60,
            missing: None,
        }
    }

    fn judged(report: serde_json::Value) -> (bool, CheckResult) {
        let mut result = CheckResult::new(CheckName::Disks);
        let smart = judge("/dev/sda", &report, &config(), &mut result);
        (smart, result)
    }

    #[test]
    fn a_healthy_ata_disk() {
        let (smart, r) = judged(serde_json::json!({
            "smartctl": {"exit_status": 0},
            "smart_support": {"available": true, "enabled": true},
            "smart_status": {"passed": true},
            "temperature": {"current": 34},
            "ata_smart_attributes": {"table": [
                {"id": 5, "name": "Reallocated_Sector_Ct", "raw": {"value": 0}},
                {"id": 197, "name": "Current_Pending_Sector", "raw": {"value": 0}}
            ]}
        }));
        assert!(smart);
        assert_eq!(r.status, Status::Ok, "{:?}", r.details);
        assert_eq!(r.values.len(), 4);
    }

    #[test]
    fn failing_and_worn_disks() {
        let (_, r) = judged(serde_json::json!({
            "smartctl": {"exit_status": 8 | 16},
            "smart_status": {"passed": false},
            "ata_smart_attributes": {"table": [
                {"id": 5, "raw": {"value": 12}}
            ]}
        }));
        assert_eq!(r.status, Status::Critical);
        assert_eq!(r.details.len(), 3, "{:?}", r.details);
        let (_, r) = judged(serde_json::json!({
            "smartctl": {"exit_status": 64},
            "smart_status": {"passed": true},
            "temperature": {"current": 70},
            "nvme_smart_health_information_log": {"critical_warning": 0, "media_errors": 2, "percentage_used": 100}
        }));
        assert_eq!(r.status, Status::Warning);
        assert_eq!(r.details.len(), 4, "{:?}", r.details);
    }

    #[test]
    fn disks_without_smart_are_not_judged() {
        let (smart, r) = judged(serde_json::json!({
            "smartctl": {"exit_status": 1, "messages": [{"string": "/dev/vda: Unable to detect device type"}]}
        }));
        assert!(!smart);
        assert_eq!(r.status, Status::Ok);
        let (smart, _) = judged(serde_json::json!({
            "smartctl": {"exit_status": 4},
            "smart_support": {"available": false}
        }));
        assert!(!smart);
    }
}
