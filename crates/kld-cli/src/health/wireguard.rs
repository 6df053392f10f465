//! The WireGuard check: per interface, how many peers have a live session
//! (a handshake within WireGuard's 180-second session lifetime), read from
//! the live devices through kld-wg (kernel and userspace).

use kld_wg::device::{self, Iface};

use super::config::Wireguard;
use super::sources::Sources;
use super::{age, CheckName, CheckResult, Failed, Measurement, Status};

pub(super) fn check(config: &Wireguard, sources: &Sources) -> Result<CheckResult, Failed> {
    let ifaces: Vec<Iface> = if config.interfaces.is_empty() {
        device::list()
    } else {
        config
            .interfaces
            .iter()
            .map(|name| Iface::new(name).map_err(|e| Failed::Error(e.to_string())))
            .collect::<Result<_, _>>()?
    };
    if ifaces.is_empty() {
        return Err(Failed::Missing("no WireGuard interface exists here".into()));
    }
    let mut result = CheckResult::new(CheckName::Wireguard);
    let (mut total, mut up_total) = (0usize, 0usize);
    for iface in &ifaces {
        let status = match device::show(iface) {
            Ok(status) => status,
            Err(e) => {
                result.finding(Status::Critical, format!("{iface}: {e}"));
                continue;
            }
        };
        let up = status.peers.iter().filter(|p| p.is_up(sources.now)).count();
        total += status.peers.len();
        up_total += up;
        let label = |m: Measurement| m.label("interface", iface.as_str());
        result.values.extend([
            label(Measurement::new(
                "kld_wireguard_peers",
                "Peers configured on a WireGuard interface.",
                status.peers.len() as f64,
            )),
            label(Measurement::new(
                "kld_wireguard_peers_up",
                "Peers of a WireGuard interface with a handshake in the last 180 seconds.",
                up as f64,
            )),
        ]);
        for peer in &status.peers {
            let key = peer.public_key.to_string();
            if let Some(at) = peer.latest_handshake {
                let since = sources.now.saturating_sub(at);
                result.values.push(label(
                    Measurement::new(
                        "kld_wireguard_peer_handshake_age_seconds",
                        "Time since a WireGuard peer's latest handshake.",
                        since as f64,
                    )
                    .label("peer", &key),
                ));
                if !peer.is_up(sources.now) {
                    result.finding(
                        config.down,
                        format!(
                            "{iface}: peer {key} is down (last handshake {} ago)",
                            age(since)
                        ),
                    );
                }
            } else {
                result.finding(
                    config.down,
                    format!("{iface}: peer {key} has never completed a handshake"),
                );
            }
        }
    }
    result.summary = format!("{up_total}/{total} peers up");
    Ok(result)
}
