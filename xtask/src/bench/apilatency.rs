//! API to dataplane: how soon a reservation added, changed or removed
//! through the REST API is answered the new way on the wire. Runs
//! `stormboot bench-api` against a daemon in the lab and keeps its report.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use stormboot_testbed::{wait_for, Side, Testbed, CLIENT_IF};

const TOKEN: &str = "bench-api-token";

/// The daemon started in a fresh lab, `cycles` add/change/remove cycles
/// measured by `bench-api`, its JSON report.
pub fn measure(dir: &Path, bin: &Path, cycles: u32) -> Result<serde_json::Value> {
    let work = dir.join("api");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let config = work.join("stormboot.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\ninterface = \"sb0\"\naddress = \"10.50.0.1\"\nlease_db = \"leases.db\"\n\n\
             [api]\nlisten = \"127.0.0.1:8067\"\ntoken = \"{TOKEN}\"\n\n\
             [[subnet]]\ncidr = \"10.50.0.0/24\"\nrouters = [\"10.50.0.1\"]\n\
             pool = [\"10.50.0.100-10.50.0.199\"]\nlease_time = \"1h\"\n"
        ),
    )?;
    let mut bed = Testbed::new("benchapi", None)?;
    // Before the daemon, which keeps driver mode only on a veth whose peer
    // runs XDP.
    let mut pass = Command::new(bin);
    pass.args(["xdp-pass", "--interface", CLIENT_IF])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    bed.spawn(Side::Client, pass)?;
    std::thread::sleep(Duration::from_millis(300));
    let mut serve = Command::new(bin);
    serve
        .args(["--log", "warn", "serve", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(work.join("stormboot.log"))?);
    let pid = bed.spawn(Side::Server, serve)?;
    let stats = |bed: &Testbed| {
        let mut c = Command::new(bin);
        c.args(["stats", "--json", "--config"]).arg(&config);
        bed.run(Side::Server, c).ok().map(|_| ())
    };
    if wait_for(Duration::from_secs(20), || stats(&bed)).is_none() {
        bail!(
            "stormboot did not come up:\n{}",
            std::fs::read_to_string(work.join("stormboot.log")).unwrap_or_default()
        );
    }
    let mut probe = Command::new(bin);
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
        .args(["--cycles", &cycles.to_string(), "--config"])
        .arg(&config);
    let out = bed
        .run(Side::Server, probe)
        .context("stormboot bench-api")?;
    bed.stop(pid)?;
    serde_json::from_slice(&out.stdout).context("decoding bench-api's JSON")
}

/// The report's section for `r` (bench-api's JSON).
pub fn markdown(r: &serde_json::Value, cycles: u32) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{cycles} cycles of add, change and remove of one reservation through the API; \
         from the API's 200 to the first DISCOVER answered the new way (by XDP for an add \
         or a change, passed up for a removal):\n"
    );
    let _ = writeln!(
        t,
        "| change | count | p50 (µs) | p99 (µs) | max (µs) |\n|---|---|---|---|---|"
    );
    for (key, label) in [
        ("visible", "any"),
        ("added", "added"),
        ("changed", "changed"),
        ("removed", "removed"),
        ("api", "the API's own answer (fsync included)"),
    ] {
        let s = &r[key];
        if s.is_null() {
            continue;
        }
        let _ = writeln!(
            t,
            "| {label} | {} | {} | {} | {} |",
            s["changes"], s["p50_us"], s["p99_us"], s["max_us"]
        );
    }
    if let Some(n) = r["timeouts"].as_u64().filter(|&n| n > 0) {
        let _ = writeln!(
            t,
            "
{n} change(s) were not seen within bench-api's timeout."
        );
    }
    t
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_table_lists_each_kind_of_change() {
        let r = serde_json::json!({
            "visible": {"changes": 9, "p50_us": 7, "p99_us": 17, "max_us": 20},
            "added": {"changes": 3, "p50_us": 6, "p99_us": 9, "max_us": 9},
        });
        let t = super::markdown(&r, 3);
        assert!(t.contains("| any | 9 | 7 | 17 | 20 |"), "{t}");
        assert!(t.contains("| added | 3 | 6 | 9 | 9 |"), "{t}");
        assert!(!t.contains("| removed"), "{t}");
    }
}
