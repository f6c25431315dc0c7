//! `[store]`: which backend keeps the leases and the API's reservations,
//! and where. `backend = "sqlite"` (the default) takes `path`, the file;
//! `backend = "postgres"` takes `url`, `pool_size` and `password_file`.
//!
//! `server.lease_db`, the key before `[store]`, still sets the SQLite path,
//! with a warning naming its replacement: configurations written for older
//! releases keep starting, and the operator learns what to change.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_spanned::Spanned;

use super::location::Source;
use super::validate::ReadFile;
use super::{ConfigError, Postgres, Secret, Store, Warning};

type S<T> = Spanned<T>;

/// Kept from the lease-only releases, so an upgrade finds its leases.
pub const DEFAULT_SQLITE_PATH: &str = "/var/lib/stormboot/leases.db";

/// Connections to PostgreSQL when `pool_size` is not given: the writer's,
/// and room for loads and for the calls queued behind a reconnection.
pub const DEFAULT_POOL_SIZE: usize = 8;

/// More connections than this would only crowd the server: one writer
/// does all the writing.
const MAX_POOL_SIZE: i64 = 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wire {
    pub backend: Option<S<String>>,
    pub path: Option<S<String>>,
    pub url: Option<S<String>>,
    pub pool_size: Option<S<i64>>,
    pub password_file: Option<S<String>>,
}

const BACKENDS: &str = "\"sqlite\", \"postgres\"";

/// The store `[store]` (or the deprecated `server.lease_db`) configures;
/// a deprecated key adds a warning.
pub fn store(
    w: Option<&Wire>,
    lease_db: Option<&S<String>>,
    src: &Source,
    read: ReadFile,
    warnings: &mut Vec<Warning>,
) -> Result<Store, ConfigError> {
    match w.and_then(|w| w.backend.as_ref()) {
        None => {}
        Some(b) if b.get_ref() == "sqlite" => {}
        Some(b) if b.get_ref() == "postgres" => {
            let w = w.expect("a backend key is in a [store] section");
            return postgres(w, b, lease_db, src, read).map(Store::Postgres);
        }
        Some(b) => {
            return Err(src.invalid(
                &b.span(),
                "store.backend",
                format!("{:?} is not one of {BACKENDS}", b.get_ref()),
            ))
        }
    }
    // The keys of another backend would be ignored: say so rather than
    // run on a file while the operator thinks the server is used.
    if let Some(w) = w {
        let theirs = [
            ("url", w.url.as_ref().map(|s| s.span())),
            ("pool_size", w.pool_size.as_ref().map(|s| s.span())),
            ("password_file", w.password_file.as_ref().map(|s| s.span())),
        ];
        if let Some((key, Some(span))) = theirs.into_iter().find(|(_, span)| span.is_some()) {
            return Err(src.invalid(
                &span,
                format!("store.{key}"),
                "belongs to backend = \"postgres\"; this store is SQLite (set store.backend)",
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

/// `backend = "postgres"`: `url` (checked as the store will read it),
/// `pool_size`, and the password from `password_file` (read now, so a
/// missing file names its key and line).
fn postgres(
    w: &Wire,
    backend: &S<String>,
    lease_db: Option<&S<String>>,
    src: &Source,
    read: ReadFile,
) -> Result<Postgres, ConfigError> {
    if let Some(p) = &w.path {
        return Err(src.invalid(
            &p.span(),
            "store.path",
            "backend \"postgres\" takes url, not path",
        ));
    }
    if let Some(old) = lease_db {
        return Err(src.invalid(
            &old.span(),
            "server.lease_db",
            "names a SQLite file, and store.backend is \"postgres\"; remove it",
        ));
    }
    let Some(url) = &w.url else {
        return Err(src.invalid(
            &backend.span(),
            "store.url",
            "backend \"postgres\" needs url (say url = \"host=/var/run/postgresql dbname=stormboot\")",
        ));
    };
    crate::store::postgres::connection(url.get_ref())
        .map_err(|why| src.invalid(&url.span(), "store.url", why))?;
    let pool_size = match &w.pool_size {
        None => DEFAULT_POOL_SIZE,
        Some(n) => match *n.get_ref() {
            v @ 1..=MAX_POOL_SIZE => v as usize,
            v => {
                return Err(src.invalid(
                    &n.span(),
                    "store.pool_size",
                    format!("{v} is not between 1 and {MAX_POOL_SIZE}"),
                ))
            }
        },
    };
    let password = match &w.password_file {
        None => None,
        Some(f) => {
            let path = file_path(f, "store.password_file", src)?;
            let text = read(&path).map_err(|e| {
                src.invalid(
                    &f.span(),
                    "store.password_file",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            // The one line end an editor or `echo` leaves is not part of
            // the password; anything else (spaces included) is.
            let password = text
                .strip_suffix('\n')
                .map(|t| t.strip_suffix('\r').unwrap_or(t))
                .unwrap_or(&text);
            if password.is_empty() {
                return Err(src.invalid(
                    &f.span(),
                    "store.password_file",
                    format!("{} is empty", path.display()),
                ));
            }
            Some(Secret(password.to_owned()))
        }
    };
    Ok(Postgres {
        url: url.get_ref().clone(),
        pool_size,
        password,
    })
}

/// A path relative to the config file, like `reservations_file`.
fn file_path(s: &S<String>, key: &str, src: &Source) -> Result<PathBuf, ConfigError> {
    if s.get_ref().trim().is_empty() {
        return Err(src.invalid(&s.span(), key, "path is empty"));
    }
    let p = Path::new(s.get_ref());
    Ok(match src.path.parent() {
        Some(dir) if p.is_relative() => dir.join(p),
        _ => p.to_path_buf(),
    })
}

/// A file path, relative to the config file like `reservations_file`.
fn sqlite_path(s: &S<String>, key: &str, src: &Source) -> Result<PathBuf, ConfigError> {
    let text = s.get_ref();
    if text.contains("://") {
        // A server's URL belongs to a networked backend; as a file name it
        // would quietly create a directory called "postgres:".
        return Err(src.invalid(
            &s.span(),
            key,
            format!("{text:?} is a URL; backend \"sqlite\" takes a file path"),
        ));
    }
    file_path(s, key, src)
}

#[cfg(test)]
mod tests {
    use super::super::{Config, Store};
    use std::path::{Path, PathBuf};

    const SERVER: &str = "[server]\ninterface = \"sb0\"\naddress = \"10.50.0.1\"\n";
    const SUBNET: &str = "\n[[subnet]]\ncidr = \"10.50.0.0/24\"\n";

    fn parse(server_keys: &str, store: &str) -> Result<Config, String> {
        parse_with(server_keys, store, &[])
    }

    /// `parse`, with `files` (path, contents) readable.
    fn parse_with(
        server_keys: &str,
        store: &str,
        files: &[(&str, &str)],
    ) -> Result<Config, String> {
        let text = format!("{SERVER}{server_keys}{SUBNET}{store}");
        Config::from_str_with(
            &text,
            Path::new("/etc/stormboot/stormboot.toml"),
            &mut |p| {
                files
                    .iter()
                    .find(|(f, _)| Path::new(f) == p)
                    .map(|(_, text)| text.to_string())
                    .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
            },
        )
        .map_err(|e| e.to_string())
    }

    fn postgres(c: &Config) -> &super::super::Postgres {
        match &c.store {
            Store::Postgres(pg) => pg,
            other => panic!("not a PostgreSQL store: {other:?}"),
        }
    }

    #[test]
    fn postgres_takes_a_url_a_pool_size_and_a_password_file() {
        let c = parse_with(
            "",
            "\n[store]\nbackend = \"postgres\"\n\
             url = \"host=/var/run/postgresql dbname=stormboot\"\n\
             pool_size = 3\npassword_file = \"pg.pass\"\n",
            &[("/etc/stormboot/pg.pass", "s3cret-Pw \n")],
        )
        .unwrap();
        let pg = postgres(&c);
        assert_eq!(pg.url, "host=/var/run/postgresql dbname=stormboot");
        assert_eq!(pg.pool_size, 3);
        // The line end goes, the space before it is the password's.
        assert_eq!(pg.password, Some(super::Secret("s3cret-Pw ".into())));
        assert!(!format!("{c:?}").contains("s3cret"), "{c:?}");
        assert!(c.warnings.is_empty());

        let c = parse(
            "",
            "\n[store]\nbackend = \"postgres\"\nurl = \"postgresql://sb@db.example/sb\"\n",
        )
        .unwrap();
        assert_eq!(postgres(&c).pool_size, super::DEFAULT_POOL_SIZE);
        assert_eq!(postgres(&c).password, None);
    }

    #[test]
    fn bad_postgres_keys_name_the_key_and_line() {
        let pg = "\n[store]\nbackend = \"postgres\"\n";
        let url = "url = \"dbname=sb\"\n";
        let cases: &[(&str, String, &str)] = &[
            (
                "",
                pg.to_string(),
                "9: store.url: backend \"postgres\" needs url",
            ),
            (
                "",
                format!("{pg}{url}pool_size = 0\n"),
                "11: store.pool_size: 0 is not between 1 and 1000",
            ),
            (
                "",
                format!("{pg}url = \"postgresql://sb:hunter2-secret@db/sb\"\n"),
                "10: store.url: holds a password",
            ),
            (
                "",
                format!("{pg}url = \"host=db port=x password=hunter2-secret\"\n"),
                "10: store.url: not a PostgreSQL connection string",
            ),
            (
                "",
                format!("{pg}{url}path = \"s.db\"\n"),
                "11: store.path: backend \"postgres\" takes url, not path",
            ),
            (
                "lease_db = \"a.db\"\n",
                format!("{pg}{url}"),
                "4: server.lease_db: names a SQLite file",
            ),
            (
                "",
                format!("{pg}{url}password_file = \"missing\"\n"),
                "11: store.password_file: cannot read /etc/stormboot/missing",
            ),
            (
                "",
                "\n[store]\nurl = \"dbname=sb\"\n".to_string(),
                "9: store.url: belongs to backend = \"postgres\"",
            ),
        ];
        for (server_keys, store, want) in cases {
            let e = parse(server_keys, store).unwrap_err();
            let want = format!("/etc/stormboot/stormboot.toml:{want}");
            assert!(e.starts_with(&want), "{store:?}:\n{e}\nwant {want}");
            assert!(!e.contains("hunter2"), "{e}");
        }
        let e = parse_with(
            "",
            &format!("{pg}{url}password_file = \"/run/pg.pass\"\n"),
            &[("/run/pg.pass", "\n")],
        )
        .unwrap_err();
        assert_eq!(
            e,
            "/etc/stormboot/stormboot.toml:11: store.password_file: /run/pg.pass is empty"
        );
    }

    fn path(c: &Config) -> &Path {
        match &c.store {
            Store::Sqlite { path } => path,
            other => panic!("not a SQLite store: {other:?}"),
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
        let e = parse("", "\n[store]\nbackend = \"mysql\"\n").unwrap_err();
        assert_eq!(
            e,
            "/etc/stormboot/stormboot.toml:9: store.backend: \"mysql\" is not one of \"sqlite\", \"postgres\""
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
