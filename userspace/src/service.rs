//! `stormboot install-service`: writes the systemd unit shipped in
//! dist/systemd with this binary's and the configuration's paths.

use std::path::{Path, PathBuf};

/// The unit as shipped; its ExecStart names the default paths.
pub const UNIT: &str = include_str!("../../dist/systemd/stormboot.service");

const DEFAULT_EXEC: &str =
    "ExecStart=/usr/local/bin/stormboot serve --config /etc/stormboot/stormboot.toml";

/// The unit with `binary` and `config` in its ExecStart.
pub fn render(binary: &Path, config: &Path) -> String {
    let exec = format!(
        "ExecStart={} serve --config {}",
        quote(binary),
        quote(config)
    );
    UNIT.replace(DEFAULT_EXEC, &exec)
}

/// systemd splits ExecStart on spaces unless the word is quoted.
fn quote(p: &Path) -> String {
    let s = p.display().to_string();
    if s.contains(char::is_whitespace) {
        format!("\"{s}\"")
    } else {
        s
    }
}

/// What `install` did, for the command to report.
#[derive(Debug)]
pub struct Installed {
    pub unit: PathBuf,
    /// Whether a running systemd was told to reload its units.
    pub reloaded: bool,
}

/// Writes the unit into `unit_dir` and, when systemd runs this host and
/// `reload` is set, runs `systemctl daemon-reload`.
pub fn install(
    unit_dir: &Path,
    binary: &Path,
    config: &Path,
    reload: bool,
) -> anyhow::Result<Installed> {
    use anyhow::Context;
    std::fs::create_dir_all(unit_dir)
        .with_context(|| format!("creating {}", unit_dir.display()))?;
    let unit = unit_dir.join("stormboot.service");
    std::fs::write(&unit, render(binary, config))
        .with_context(|| format!("writing {}", unit.display()))?;
    let systemd_runs = Path::new("/run/systemd/system").is_dir();
    let reloaded = reload && systemd_runs && {
        let st = std::process::Command::new("systemctl")
            .arg("daemon-reload")
            .status()
            .context("running systemctl daemon-reload")?;
        anyhow::ensure!(st.success(), "systemctl daemon-reload: {st}");
        true
    };
    Ok(Installed { unit, reloaded })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_in_the_paths_and_keeps_the_rest() {
        let u = render(
            Path::new("/opt/sb/bin/stormboot"),
            Path::new("/srv/conf dir/sb.toml"),
        );
        assert!(
            u.contains("ExecStart=/opt/sb/bin/stormboot serve --config \"/srv/conf dir/sb.toml\"")
        );
        assert!(!u.contains(DEFAULT_EXEC));
        assert!(u.contains("Type=notify"));
        assert_eq!(u.lines().count(), UNIT.lines().count());
    }

    #[test]
    fn the_shipped_unit_names_the_default_paths() {
        assert!(
            UNIT.contains(DEFAULT_EXEC),
            "render() would not find the line to replace"
        );
    }
}
