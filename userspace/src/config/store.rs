//! `[store]`: which backend keeps the leases and the API's reservations,
//! and where. `backend = "sqlite"` (the default, the only one in this
//! build) takes `path`, the file.
//!
//! `server.lease_db`, the key before `[store]`, still sets the SQLite path,
//! with a warning naming its replacement: configurations written for older
//! releases keep starting, and the operator learns what to change.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_spanned::Spanned;

use super::location::Source;
use super::{ConfigError, Store, Warning};

type S<T> = Spanned<T>;

/// Kept from the lease-only releases, so an upgrade finds its leases.
pub const DEFAULT_SQLITE_PATH: &str = "/var/lib/stormboot/leases.db";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wire {
    pub backend: Option<S<String>>,
    pub path: Option<S<String>>,
}

/// The store `[store]` (or the deprecated `server.lease_db`) configures;
/// a deprecated key adds a warning.
pub fn store(
    w: Option<&Wire>,
    lease_db: Option<&S<String>>,
    src: &Source,
    warnings: &mut Vec<Warning>,
) -> Result<Store, ConfigError> {
    let backend = w.and_then(|w| w.backend.as_ref());
    if let Some(b) = backend {
        if b.get_ref() != "sqlite" {
            return Err(src.invalid(
                &b.span(),
                "store.backend",
                format!("{:?} is not one of \"sqlite\"", b.get_ref()),
            ));
        }
    }
    let path = w.and_then(|w| w.path.as_ref());
    let (written, key) = match (path, lease_db) {
        (Some(_), Some(old)) => {
            return Err(src.invalid(
                &old.span(),
                "server.lease_db",
                "store.path is set too; remove server.lease_db (store.path replaces it)",
            ))
        }
        (Some(p), None) => (Some(p), "store.path"),
        (None, Some(old)) => {
            warnings.push(Warning {
                at: src.at(&old.span()),
                key: "server.lease_db".into(),
                message: format!("deprecated; write it as [store] path = {:?}", old.get_ref()),
            });
            (Some(old), "server.lease_db")
        }
        (None, None) => (None, "store.path"),
    };
    let path = match written {
        None => PathBuf::from(DEFAULT_SQLITE_PATH),
        Some(s) => sqlite_path(s, key, src)?,
    };
    Ok(Store::Sqlite { path })
}

/// A file path, relative to the config file like `reservations_file`.
fn sqlite_path(s: &S<String>, key: &str, src: &Source) -> Result<PathBuf, ConfigError> {
    let text = s.get_ref();
    if text.trim().is_empty() {
        return Err(src.invalid(&s.span(), key, "path is empty"));
    }
    if text.contains("://") {
        // A server's URL belongs to a networked backend; as a file name it
        // would quietly create a directory called "postgres:".
        return Err(src.invalid(
            &s.span(),
            key,
            format!("{text:?} is a URL; backend \"sqlite\" takes a file path"),
        ));
    }
    let p = Path::new(text);
    Ok(match src.path.parent() {
        Some(dir) if p.is_relative() => dir.join(p),
        _ => p.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::{Config, Store};
    use std::path::{Path, PathBuf};

    const SERVER: &str = "[server]\ninterface = \"sb0\"\naddress = \"10.50.0.1\"\n";
    const SUBNET: &str = "\n[[subnet]]\ncidr = \"10.50.0.0/24\"\n";

    fn parse(server_keys: &str, store: &str) -> Result<Config, String> {
        let text = format!("{SERVER}{server_keys}{SUBNET}{store}");
        Config::from_str_with(
            &text,
            Path::new("/etc/stormboot/stormboot.toml"),
            &mut |_| unreachable!(),
        )
        .map_err(|e| e.to_string())
    }

    fn path(c: &Config) -> &Path {
        match &c.store {
            Store::Sqlite { path } => path,
        }
    }

    #[test]
    fn sqlite_is_the_default_at_the_old_path() {
        let c = parse("", "").unwrap();
        assert_eq!(path(&c), Path::new("/var/lib/stormboot/leases.db"));
        assert!(c.warnings.is_empty());
        let c = parse("", "\n[store]\nbackend = \"sqlite\"\n").unwrap();
        assert_eq!(path(&c), Path::new("/var/lib/stormboot/leases.db"));
    }

    #[test]
    fn a_path_is_relative_to_the_config_file() {
        let c = parse("", "\n[store]\npath = \"state/stormboot.db\"\n").unwrap();
        assert_eq!(path(&c), Path::new("/etc/stormboot/state/stormboot.db"));
        let c = parse(
            "",
            "\n[store]\nbackend = \"sqlite\"\npath = \"/srv/s.db\"\n",
        )
        .unwrap();
        assert_eq!(path(&c), Path::new("/srv/s.db"));
        assert!(c.warnings.is_empty());
    }

    #[test]
    fn another_backend_names_the_key_and_line() {
        let e = parse("", "\n[store]\nbackend = \"postgres\"\n").unwrap_err();
        assert_eq!(
            e,
            "/etc/stormboot/stormboot.toml:9: store.backend: \"postgres\" is not one of \"sqlite\""
        );
    }

    #[test]
    fn bad_paths_name_the_key_and_line() {
        let e = parse("", "\n[store]\n\npath = \"  \"\n").unwrap_err();
        assert_eq!(
            e,
            "/etc/stormboot/stormboot.toml:10: store.path: path is empty"
        );
        let e = parse("", "\n[store]\npath = \"postgres://db/stormboot\"\n").unwrap_err();
        assert!(
            e.starts_with("/etc/stormboot/stormboot.toml:9: store.path: ")
                && e.contains("is a URL"),
            "{e}"
        );
        let e = parse("", "\n[store]\npaht = \"x.db\"\n").unwrap_err();
        assert!(e.starts_with("/etc/stormboot/stormboot.toml:9:"), "{e}");
        assert!(e.contains("paht"), "{e}");
    }

    #[test]
    fn lease_db_still_works_with_a_warning_naming_the_replacement() {
        let c = parse("lease_db = \"leases.db\"\n", "").unwrap();
        assert_eq!(path(&c), PathBuf::from("/etc/stormboot/leases.db"));
        let warnings: Vec<String> = c.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(
            warnings,
            vec![
                "/etc/stormboot/stormboot.toml:4: server.lease_db: \
                 deprecated; write it as [store] path = \"leases.db\""
            ]
        );
    }

    #[test]
    fn lease_db_beside_store_path_is_refused() {
        let e = parse("lease_db = \"a.db\"\n", "\n[store]\npath = \"b.db\"\n").unwrap_err();
        assert!(
            e.starts_with(
                "/etc/stormboot/stormboot.toml:4: server.lease_db: store.path is set too"
            ),
            "{e}"
        );
    }
}
