//! SIGHUP: the configuration read again and applied without detaching the
//! dataplane. Reservations, options, subnets and boot profiles change in
//! place; what is bound at start (interfaces, sockets, the store, the
//! program's compiled-in settings) needs a restart, and a file that changes
//! it is refused whole, naming the key, while the running one stays.

use crate::config::Config;

/// The first key whose change needs a restart, with why; None when `new`
/// can replace `old` in place.
pub fn needs_restart(old: &Config, new: &Config) -> Option<(&'static str, &'static str)> {
    let (o, n) = (&old.server, &new.server);
    let checks: [(bool, &'static str, &'static str); 12] = [
        (
            o.interfaces != n.interfaces,
            "server.interface",
            "sockets and XDP are attached at start",
        ),
        (
            o.address != n.address,
            "server.address",
            "it is every reply's source",
        ),
        (
            o.mode != n.mode,
            "server.mode",
            "the sockets differ by mode",
        ),
        (
            o.dataplane != n.dataplane,
            "server.dataplane",
            "XDP is attached or not at start",
        ),
        (
            o.xdp_mode != n.xdp_mode,
            "server.xdp_mode",
            "the attach mode is fixed by the link",
        ),
        (
            o.xdp_log_level != n.xdp_log_level,
            "server.xdp_log_level",
            "it is compiled into the loaded program",
        ),
        (
            o.bpffs_dir != n.bpffs_dir,
            "server.bpffs_dir",
            "the links are pinned there",
        ),
        (old.store != new.store, "store", "the store is open"),
        (
            old.api.listen != new.api.listen,
            "api.listen",
            "the socket is bound",
        ),
        (
            old.boot.enabled != new.boot.enabled,
            "boot",
            "the boot services start with the daemon",
        ),
        (
            old.hooks != new.hooks,
            "hooks",
            "the hook worker starts with the daemon",
        ),
        (
            old.boot.http_port != new.boot.http_port
                || old.boot.tftp_port != new.boot.tftp_port
                || old.boot.syslog_port != new.boot.syslog_port
                || old.boot.tftp_root != new.boot.tftp_root
                || old.boot.artifacts_dir != new.boot.artifacts_dir,
            "boot",
            "ports and served directories are bound at start",
        ),
    ];
    checks
        .into_iter()
        .find(|(changed, ..)| *changed)
        .map(|(_, key, why)| (key, why))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"[server]
interface = "sb0"
address = "10.50.0.1"

[[subnet]]
cidr = "10.50.0.0/24"

[[reservation]]
mac = "52:54:00:00:00:01"
ip = "10.50.0.11"
"#;

    /// Loads `text` from a file of its own: tests run in parallel and
    /// parse the same texts, and a file shared by name could be read by
    /// one while another rewrites it.
    fn parse(text: &str) -> Config {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!("sb-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = dir.join(format!("{n}.toml"));
        std::fs::write(&path, text).unwrap();
        Config::load(&path).unwrap()
    }

    #[test]
    fn reservations_and_options_change_in_place() {
        let new = BASE.replace("10.50.0.11", "10.50.0.12")
            + "\n[[reservation]]\nmac = \"52:54:00:00:00:02\"\nip = \"10.50.0.13\"\n";
        let new = new.replace(
            "cidr = \"10.50.0.0/24\"",
            "cidr = \"10.50.0.0/24\"\nlease_time = \"2h\"",
        );
        assert_eq!(needs_restart(&parse(BASE), &parse(&new)), None);
    }

    #[test]
    fn what_is_bound_at_start_is_named() {
        for (from, to, key) in [
            (
                "interface = \"sb0\"",
                "interface = \"sb1\"",
                "server.interface",
            ),
            (
                "address = \"10.50.0.1\"",
                "address = \"10.50.0.2\"",
                "server.address",
            ),
            (
                "[server]\n",
                "[server]\nxdp_log_level = \"debug\"\n",
                "server.xdp_log_level",
            ),
            (
                "[server]\n",
                "[server]\n\n[api]\nlisten = \"127.0.0.1:9\"\n\n[server]\n",
                "api.listen",
            ),
        ] {
            let text = BASE.replacen(from, to, 1);
            // The [api] case moves [server] below [api]; TOML allows that.
            let new = if key == "api.listen" {
                BASE.replacen(
                    "[server]\n",
                    "[api]\nlisten = \"127.0.0.1:9\"\n\n[server]\n",
                    1,
                )
            } else {
                text
            };
            assert_eq!(
                needs_restart(&parse(BASE), &parse(&new)).map(|(k, _)| k),
                Some(key),
                "{new}"
            );
        }
    }
}
