//! API to dataplane: how long from sending a reservation's add, change or
//! removal to the REST API until the wire answers the new way, with many
//! reservations loaded. Runs `stormboot-lab bench-api` against a daemon in the
//! lab and keeps its report.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use stormboot_testbed::labconfig::{LabConfig, Machines};
use stormboot_testbed::{Side, Testbed, CLIENT_IF};

use super::reports::{self, ApiReport as Api};
use super::servers::{POOL_FIRST, PREFIX_LEN};
use super::Bins;

/// Where the loaded reservations start: past the server, the pool and the
/// two addresses bench-api alternates between (the subnet's last two).
const LOAD_FIRST_IP: Ipv4Addr = Ipv4Addr::new(10, 53, 0, 0);

const TOKEN: &str = "bench-api-token";

/// The daemon started in a fresh lab with `load` reservations from its
/// reservations file, then `cycles` add/change/remove cycles of one more
/// measured by `bench-api`: its report. (Not bulk-loaded through the API:
/// the daemon sizes its reservation map at start for what it holds then,
/// plus headroom of 8,192 map entries, which 100,000 API additions exceed.)
pub fn measure(dir: &Path, bins: &Bins, load: u32, cycles: u32) -> Result<Api> {
    let work = dir.join("api");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let mut c = LabConfig::new(
        Machines {
            count: load,
            first_mac: [0x02, 0xb1, 0, 0, 0, 0],
            first_ip: LOAD_FIRST_IP,
            hostname: "load",
        },
        &format!("10.48.0.0/{PREFIX_LEN}"),
    );
    c.pool = Some(format!("{POOL_FIRST}-10.52.0.99"));
    c.sections = format!("[api]\nlisten = \"127.0.0.1:8067\"\ntoken = \"{TOKEN}\"\n");
    let config = c.write(&work)?;
    let mut bed = Testbed::new("benchapi", None)?;
    // A /12, as in the storm: room for the loaded reservations.
    super::widen_addresses(&bed)?;
    bed.attach_client_pass(&bins.lab)?;
    let pid = super::start_stormboot(
        &mut bed,
        &bins.daemon,
        &config,
        &work,
        Duration::from_secs(20),
    )?;
    let mut probe = Command::new(&bins.lab);
    probe
        .args([
            "--log",
            "warn",
            "bench-api",
            "--json",
            "--interface",
            CLIENT_IF,
        ])
        .arg("--netns")
        .arg(bed.ns_path(Side::Client))
        .args(["--cycles", &cycles.to_string()])
        // A probe that goes unanswered (an unknown MAC's DISCOVER, dropped by
        // the slow path's per-MAC bucket) waits this long: the resolution of
        // an add or a removal.
        .args(["--probe-us", "1000"])
        .args(["--load", "0", "--config"])
        .arg(&config);
    let out = bed
        .run(Side::Server, probe)
        .context("stormboot-lab bench-api")?;
    bed.stop(pid)?;
    reports::decode("bench-api", &out.stdout)
}

/// The report's section for `r`.
pub fn markdown(r: &Api, cycles: u32) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "With {} reservations held by the daemon, {cycles} cycles of add, \
         change and remove of one more reservation through the API; from sending the \
         request to the first DISCOVER answered the new way (by XDP for an add or a change, \
         passed up for a removal), beside the API's own answer time:\n",
        r.reservations
    );
    let _ = writeln!(
        t,
        "| change | count | p50 (µs) | p99 (µs) | max (µs) |\n|---|---|---|---|---|"
    );
    for (s, label) in [
        (&r.visible, "any: request sent -> answered the new way"),
        (&r.added, "added"),
        (&r.changed, "changed"),
        (&r.removed, "removed"),
        (
            &r.api,
            "the API's own answer: request sent -> 200 (fsync included)",
        ),
    ] {
        if s.changes == 0 {
            continue;
        }
        let _ = writeln!(
            t,
            "| {label} | {} | {} | {} | {} |",
            s.changes, s.p50_us, s.p99_us, s.max_us
        );
    }
    let _ = writeln!(
        t,
        "\n{} of {} changes were answered the new way before the API's 200 arrived.",
        r.seen_before_200, r.visible.changes
    );
    if r.timeouts > 0 {
        let _ = writeln!(
            t,
            "\n{} change(s) were not seen within bench-api's timeout.",
            r.timeouts
        );
    }
    t
}

#[cfg(test)]
mod tests {
    use super::super::reports::{self, ApiReport as Api};

    #[test]
    fn the_table_lists_each_kind_of_change_from_the_request() {
        let json = br#"{"reservations": 100000,
            "visible": {"changes": 9, "p50_us": 7, "p99_us": 17, "max_us": 20},
            "added": {"changes": 3, "p50_us": 6, "p99_us": 9, "max_us": 9},
            "changed": {"changes": 0, "p50_us": 0, "p99_us": 0, "max_us": 0},
            "removed": {"changes": 0, "p50_us": 0, "p99_us": 0, "max_us": 0},
            "api": {"changes": 9, "p50_us": 900, "p99_us": 1500, "max_us": 2000},
            "timeouts": 0, "seen_before_200": 8}"#;
        let r: Api = reports::decode("bench-api", json).unwrap();
        let t = super::markdown(&r, 3);
        assert!(t.contains("With 100000 reservations held"), "{t}");
        assert!(
            t.contains("| any: request sent -> answered the new way | 9 | 7 | 17 | 20 |"),
            "{t}"
        );
        assert!(t.contains("| added | 3 | 6 | 9 | 9 |"), "{t}");
        assert!(
            t.contains("(fsync included) | 9 | 900 | 1500 | 2000 |"),
            "{t}"
        );
        assert!(!t.contains("| removed"), "{t}");
        assert!(
            t.contains("8 of 9 changes were answered the new way before"),
            "{t}"
        );
        // The report of the old bench-api (no load, clock from the 200) is refused.
        let old = br#"{"visible": {"changes": 9, "p50_us": 7, "p99_us": 17, "max_us": 20},
            "added": {"changes": 3, "p50_us": 6, "p99_us": 9, "max_us": 9},
            "changed": {"changes": 3, "p50_us": 6, "p99_us": 9, "max_us": 9},
            "removed": {"changes": 3, "p50_us": 6, "p99_us": 9, "max_us": 9},
            "api": {"changes": 9, "p50_us": 900, "p99_us": 1500, "max_us": 2000},
            "timeouts": 0, "seen_by_first_probe": 8}"#;
        assert!(reports::decode::<Api>("bench-api", old).is_err());
    }
}
