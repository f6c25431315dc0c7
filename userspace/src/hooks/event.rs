//! A lease event as hooks see it, and the two forms they get it in: the
//! environment (and arguments) of the command, and the webhook's JSON.
//! Pure functions, so what a script receives is tested without running one.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::Serialize;

use crate::config::Config;
use crate::dhcp::Ingress;
use crate::frame::format_mac;
use crate::leases::{LeaseAction, LeaseEvent, UnixTime};

/// Which part of the daemon saw the event happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Path {
    /// The XDP program answered (its ACK, reported on the reply ring).
    Xdp,
    /// The userspace server answered, or handled the RELEASE or DECLINE.
    Userspace,
    /// Nobody answered: the lease ran out (`expiry`).
    Timer,
}

impl Path {
    pub fn as_str(self) -> &'static str {
        match self {
            Path::Xdp => "xdp",
            Path::Userspace => "userspace",
            Path::Timer => "timer",
        }
    }
}

/// Everything a hook is told about one event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HookEvent {
    pub action: &'static str,
    pub mac: String,
    pub ip: Ipv4Addr,
    /// Option 12 as the client sent it (or the reservation's name), with
    /// control characters replaced by '?', which an environment cannot
    /// carry and a log should not.
    pub hostname: Option<String>,
    /// Option 61 (or 0x01 + MAC), as colon-separated hex.
    pub client_id: String,
    /// When the lease ends (Unix seconds): for expiry and release, when it
    /// ended; for decline, when the quarantine ends.
    pub expires: UnixTime,
    /// Seconds from `time` to `expires`; 0 once the lease is gone.
    pub remaining: u64,
    #[serde(serialize_with = "as_text")]
    pub subnet: Option<Ipv4Net>,
    /// The interface of the request (or, for an expiry, the one serving
    /// the lease's subnet); None when not known (a relayed subnet's expiry).
    pub interface: Option<String>,
    pub path: Path,
    /// When the event happened (Unix seconds).
    pub time: UnixTime,
}

impl HookEvent {
    /// The hook's view of `ev`, seen by `path` at `now`. Expiries are the
    /// timer's whichever call noticed them.
    pub fn new(
        ev: &LeaseEvent,
        path: Path,
        interface: Option<String>,
        subnet: Option<Ipv4Net>,
        now: UnixTime,
    ) -> HookEvent {
        let l = &ev.lease;
        let (path, expires) = match ev.action {
            LeaseAction::Expiry => (Path::Timer, l.expires.min(now)),
            LeaseAction::Release => (path, now),
            _ => (path, l.expires),
        };
        HookEvent {
            action: ev.action.as_str(),
            mac: format_mac(&l.mac),
            ip: l.ip,
            hostname: l.hostname.as_deref().map(printable),
            client_id: hex(&l.client_id),
            expires,
            remaining: expires.saturating_sub(now),
            subnet,
            interface,
            path,
            time: now,
        }
    }

    /// `action mac ip [hostname]`, the arguments dnsmasq gives its script.
    pub fn args(&self) -> Vec<String> {
        let mut a = vec![
            self.action.to_string(),
            self.mac.clone(),
            self.ip.to_string(),
        ];
        a.extend(self.hostname.clone());
        a
    }

    /// The command's environment: every field, as `STORMBOOT_*`; unknown
    /// values are empty rather than absent, so `set -u` scripts work.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("STORMBOOT_ACTION", self.action.to_string()),
            ("STORMBOOT_MAC", self.mac.clone()),
            ("STORMBOOT_IP", self.ip.to_string()),
            (
                "STORMBOOT_HOSTNAME",
                self.hostname.clone().unwrap_or_default(),
            ),
            ("STORMBOOT_CLIENT_ID", self.client_id.clone()),
            ("STORMBOOT_LEASE_EXPIRES", self.expires.to_string()),
            ("STORMBOOT_TIME_REMAINING", self.remaining.to_string()),
            (
                "STORMBOOT_SUBNET",
                self.subnet.map(|s| s.to_string()).unwrap_or_default(),
            ),
            (
                "STORMBOOT_INTERFACE",
                self.interface.clone().unwrap_or_default(),
            ),
            ("STORMBOOT_PATH", self.path.as_str().to_string()),
            ("STORMBOOT_TIME", self.time.to_string()),
        ]
    }

    /// The webhook's body: one JSON object, the same fields as the
    /// environment under lower-case names, null where unknown.
    pub fn json(&self) -> Vec<u8> {
        // Serializing plain strings and numbers cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

fn as_text<S: serde::Serializer>(net: &Option<Ipv4Net>, s: S) -> Result<S::Ok, S::Error> {
    match net {
        Some(n) => s.collect_str(n),
        None => s.serialize_none(),
    }
}

/// The interface and subnet hooks are told for `ev`: the interface the
/// request (or the program's ACK) came in on, `via`; for an expiry, where
/// nobody asked, the one serving the lease's subnet (its `interface`, else
/// the served interface with an address in it; none for a relayed subnet).
pub fn locate(
    cfg: &Config,
    served: &[&Ingress],
    ev: &LeaseEvent,
    via: Option<&Ingress>,
) -> (Option<String>, Option<Ipv4Net>) {
    let subnet = cfg.subnets.iter().find(|s| s.net.contains(&ev.lease.ip));
    let interface = match (ev.action, via) {
        (LeaseAction::Expiry, _) | (_, None) => subnet.and_then(|s| {
            s.interface.clone().or_else(|| {
                served
                    .iter()
                    .find(|i| s.net.contains(&i.iface_addr))
                    .map(|i| i.iface_name.clone())
            })
        }),
        (_, Some(i)) => Some(i.iface_name.clone()),
    };
    (interface, subnet.map(|s| s.net))
}

/// "01:52:54:00:00:00:01", as dnsmasq's DNSMASQ_CLIENT_ID.
fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leases::{Lease, LeaseState};

    fn lease(expires: u64, hostname: Option<&str>) -> Lease {
        Lease {
            ip: Ipv4Addr::new(10, 50, 0, 100),
            client_id: vec![1, 0x52, 0x54, 0, 0, 0, 1],
            mac: [0x52, 0x54, 0, 0, 0, 1],
            state: LeaseState::Bound,
            expires,
            updated: 1_000,
            hostname: hostname.map(str::to_owned),
        }
    }

    fn event(action: LeaseAction, l: Lease, path: Path) -> HookEvent {
        HookEvent::new(
            &LeaseEvent { action, lease: l },
            path,
            Some("sb0".into()),
            Some("10.50.0.0/24".parse().unwrap()),
            1_000,
        )
    }

    #[test]
    fn commit_environment_names_every_field() {
        let e = event(LeaseAction::Commit, lease(4_600, Some("node1")), Path::Xdp);
        let env: std::collections::BTreeMap<_, _> = e.env().into_iter().collect();
        let want = [
            ("STORMBOOT_ACTION", "commit"),
            ("STORMBOOT_MAC", "52:54:00:00:00:01"),
            ("STORMBOOT_IP", "10.50.0.100"),
            ("STORMBOOT_HOSTNAME", "node1"),
            ("STORMBOOT_CLIENT_ID", "01:52:54:00:00:00:01"),
            ("STORMBOOT_LEASE_EXPIRES", "4600"),
            ("STORMBOOT_TIME_REMAINING", "3600"),
            ("STORMBOOT_SUBNET", "10.50.0.0/24"),
            ("STORMBOOT_INTERFACE", "sb0"),
            ("STORMBOOT_PATH", "xdp"),
            ("STORMBOOT_TIME", "1000"),
        ];
        assert_eq!(env.len(), want.len());
        for (k, v) in want {
            assert_eq!(env.get(k).map(String::as_str), Some(v), "{k}");
        }
        assert_eq!(
            e.args(),
            ["commit", "52:54:00:00:00:01", "10.50.0.100", "node1"]
        );
    }

    #[test]
    fn gone_leases_have_no_time_left_and_expiry_is_the_timers() {
        // Released before its time: it ends now.
        let e = event(LeaseAction::Release, lease(4_600, None), Path::Userspace);
        assert_eq!(
            (e.expires, e.remaining, e.path),
            (1_000, 0, Path::Userspace)
        );
        // Noticed late (by a request's handling): it ended when it was due.
        let e = event(LeaseAction::Expiry, lease(990, None), Path::Userspace);
        assert_eq!((e.expires, e.remaining, e.path), (990, 0, Path::Timer));
        let env: std::collections::BTreeMap<_, _> = e.env().into_iter().collect();
        assert_eq!(env["STORMBOOT_HOSTNAME"], "");
        assert_eq!(env["STORMBOOT_ACTION"], "expiry");
        assert_eq!(e.args().len(), 3, "no hostname argument when unknown");
    }

    #[test]
    fn events_are_placed_on_their_interface_and_subnet() {
        let cfg = Config::from_str(
            "[server]\ninterface = [\"sb0\", \"sb1\"]\naddress = \"10.50.0.1\"\n\
             [[subnet]]\ncidr = \"10.50.0.0/24\"\n\
             [[subnet]]\ncidr = \"10.60.0.0/24\"\n\
             [[subnet]]\ncidr = \"10.70.0.0/24\"\ninterface = \"sb1\"\n",
            std::path::Path::new("t.toml"),
        )
        .unwrap();
        let ingress = |name: &str, addr| Ingress {
            ifindex: 1,
            iface_name: name.into(),
            iface_addr: addr,
        };
        let sb0 = ingress("sb0", Ipv4Addr::new(10, 50, 0, 1));
        let sb1 = ingress("sb1", Ipv4Addr::new(10, 80, 0, 1));
        let served = [&sb0, &sb1];
        let at = |action, ip: [u8; 4]| LeaseEvent {
            action,
            lease: crate::leases::Lease {
                ip: Ipv4Addr::from(ip),
                ..lease(0, None)
            },
        };
        let net = |s: &str| Some(s.parse().unwrap());
        // A relayed request: the interface it came in on.
        assert_eq!(
            locate(
                &cfg,
                &served,
                &at(LeaseAction::Commit, [10, 60, 0, 5]),
                Some(&sb1)
            ),
            (Some("sb1".into()), net("10.60.0.0/24"))
        );
        // Expiries: the interface with an address in the subnet, the
        // subnet's own `interface`, or none (relayed).
        let expiry = |ip| locate(&cfg, &served, &at(LeaseAction::Expiry, ip), Some(&sb1));
        assert_eq!(
            expiry([10, 50, 0, 5]),
            (Some("sb0".into()), net("10.50.0.0/24"))
        );
        assert_eq!(
            expiry([10, 70, 0, 5]),
            (Some("sb1".into()), net("10.70.0.0/24"))
        );
        assert_eq!(expiry([10, 60, 0, 5]), (None, net("10.60.0.0/24")));
        assert_eq!(expiry([192, 168, 0, 5]), (None, None));
    }

    #[test]
    fn hostnames_lose_control_characters() {
        let e = event(LeaseAction::Renew, lease(2_000, Some("a\0b\nc")), Path::Xdp);
        assert_eq!(e.hostname.as_deref(), Some("a?b?c"));
    }

    #[test]
    fn webhook_json_carries_the_same_fields() {
        let mut e = event(
            LeaseAction::Decline,
            lease(1_600, Some("n\"1")),
            Path::Userspace,
        );
        e.interface = None;
        e.subnet = None;
        let v: serde_json::Value = serde_json::from_slice(&e.json()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "action": "decline",
                "mac": "52:54:00:00:00:01",
                "ip": "10.50.0.100",
                "hostname": "n\"1",
                "client_id": "01:52:54:00:00:00:01",
                "expires": 1600,
                "remaining": 600,
                "subnet": null,
                "interface": null,
                "path": "userspace",
                "time": 1000,
            })
        );
    }
}
