//! `[cluster]`: this node's part in a group of nodes sharing one
//! PostgreSQL store: its name, how often it says it is alive, how long
//! silence means dead, and how new clients are shared out.
//!
//! Only a shared store makes a cluster: `[cluster]` beside the SQLite
//! backend is refused, naming the key, rather than run a node that thinks
//! it has partners it cannot see.

use std::time::Duration;

use serde::Deserialize;
use serde_spanned::Spanned;

use super::location::Source;
use super::validate::duration_value;
use super::{wire, Cluster, ConfigError, Store};

type S<T> = Spanned<T>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wire {
    pub node: Option<S<String>>,
    pub heartbeat: Option<S<wire::Duration>>,
    pub dead_after: Option<S<wire::Duration>>,
    pub load_balance: Option<S<bool>>,
    pub lb_max_secs: Option<S<i64>>,
    pub grace: Option<S<wire::Duration>>,
    pub sync_interval: Option<S<wire::Duration>>,
    pub slices: Option<S<bool>>,
}

impl Cluster {
    /// The defaults for a node named `node`.
    pub fn named(node: String) -> Cluster {
        Cluster {
            node,
            heartbeat: Duration::from_secs(1),
            dead_after: Duration::from_secs(3),
            load_balance: true,
            lb_max_secs: 3,
            grace: Duration::from_secs(60),
            sync_interval: Duration::from_secs(5),
            slices: true,
        }
    }
}

/// This machine's host name: the default node name, as MAAS and Kea HA
/// name their peers by host.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "stormboot".into())
}

/// `[cluster]`, checked against the store it needs.
pub fn cluster(
    w: Option<&S<Wire>>,
    store: &Store,
    src: &Source,
) -> Result<Option<Cluster>, ConfigError> {
    let Some(section) = w else {
        return Ok(None);
    };
    if !matches!(store, Store::Postgres(_)) {
        return Err(src.invalid(
            &section.span(),
            "cluster",
            "needs store.backend = \"postgres\": nodes share leases and reservations \
             through one PostgreSQL database",
        ));
    }
    let w = section.get_ref();
    let mut c = Cluster::named(host_name());
    if let Some(n) = &w.node {
        let name = n.get_ref().trim();
        if name.is_empty()
            || name.len() > 63
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(src.invalid(
                &n.span(),
                "cluster.node",
                format!(
                    "{:?} is not a node name (1 to 63 letters, digits, '-', '_' or '.')",
                    n.get_ref()
                ),
            ));
        }
        c.node = name.to_owned();
    }
    if let Some(d) = &w.heartbeat {
        c.heartbeat = duration_value(d, "cluster.heartbeat", src)?;
    }
    if let Some(d) = &w.dead_after {
        c.dead_after = duration_value(d, "cluster.dead_after", src)?;
    }
    if c.dead_after < 2 * c.heartbeat {
        // One late heartbeat must not make a live node dead.
        let (span, key) = match &w.dead_after {
            Some(d) => (d.span(), "cluster.dead_after"),
            None => (
                w.heartbeat.as_ref().map_or(section.span(), |h| h.span()),
                "cluster.heartbeat",
            ),
        };
        return Err(src.invalid(
            &span,
            key,
            format!(
                "dead_after ({}) must be at least twice the heartbeat ({})",
                super::duration::format(c.dead_after),
                super::duration::format(c.heartbeat)
            ),
        ));
    }
    if let Some(b) = &w.load_balance {
        c.load_balance = *b.get_ref();
    }
    if let Some(s) = &w.lb_max_secs {
        c.lb_max_secs = u16::try_from(*s.get_ref()).map_err(|_| {
            src.invalid(
                &s.span(),
                "cluster.lb_max_secs",
                format!("{} is not a number of seconds (0 to 65535)", s.get_ref()),
            )
        })?;
    }
    if let Some(d) = &w.grace {
        c.grace = duration_value(d, "cluster.grace", src)?;
    }
    if let Some(d) = &w.sync_interval {
        c.sync_interval = duration_value(d, "cluster.sync_interval", src)?;
    }
    if let Some(b) = &w.slices {
        c.slices = *b.get_ref();
    }
    Ok(Some(c))
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use crate::config::{Cluster, Config};

    const HEAD: &str = "[server]\ninterface = \"sb0\"\naddress = \"10.50.0.1\"\n\n[[subnet]]\ncidr = \"10.50.0.0/24\"\n";
    const PG: &str = "[store]\nbackend = \"postgres\"\nurl = \"host=/run/pg dbname=sb\"\n";

    fn parse(text: &str) -> Result<Config, String> {
        Config::from_str_with(
            text,
            Path::new("/etc/stormboot/stormboot.toml"),
            &mut |_| Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn a_cluster_takes_its_keys_over_the_defaults() {
        let c = parse(&format!(
            "{HEAD}{PG}[cluster]\nnode = \"rack-a\"\nheartbeat = \"2s\"\ndead_after = \"5s\"\n\
             load_balance = false\nlb_max_secs = 4\ngrace = \"2m\"\nsync_interval = \"10s\"\n\
             slices = false\n"
        ))
        .unwrap();
        assert_eq!(
            c.cluster,
            Some(Cluster {
                node: "rack-a".into(),
                heartbeat: Duration::from_secs(2),
                dead_after: Duration::from_secs(5),
                load_balance: false,
                lb_max_secs: 4,
                grace: Duration::from_secs(120),
                sync_interval: Duration::from_secs(10),
                slices: false,
            })
        );
        let d = parse(&format!("{HEAD}{PG}[cluster]\nnode = \"b\"\n")).unwrap();
        assert_eq!(d.cluster, Some(Cluster::named("b".into())));
        assert_eq!(parse(HEAD).unwrap().cluster, None);
    }

    #[test]
    fn bad_cluster_keys_name_the_key_and_line() {
        let err = |tail: &str| parse(&format!("{HEAD}{PG}{tail}")).unwrap_err();
        // [cluster] starts on line 10.
        let e = err("[cluster]\nnode = \"a b\"\n");
        assert!(e.contains(":11:") && e.contains("cluster.node"), "{e}");
        let e = err("[cluster]\nheartbeat = \"2s\"\ndead_after = \"3s\"\n");
        assert!(
            e.contains(":12:") && e.contains("cluster.dead_after") && e.contains("twice"),
            "{e}"
        );
        let e = err("[cluster]\nlb_max_secs = -1\n");
        assert!(
            e.contains(":11:") && e.contains("cluster.lb_max_secs"),
            "{e}"
        );
        let e = err("[cluster]\ngrace = \"0s\"\n");
        assert!(e.contains("cluster.grace") && e.contains("positive"), "{e}");
        let e = parse(&format!("{HEAD}[cluster]\nnode = \"a\"\n")).unwrap_err();
        assert!(
            e.contains(":7:") && e.contains("cluster") && e.contains("postgres"),
            "{e}"
        );
    }
}
