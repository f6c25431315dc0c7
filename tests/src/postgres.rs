//! A private PostgreSQL server for tests: `initdb` into a scratch
//! directory, `postgres` listening only on a Unix socket in it (no TCP at
//! all), databases made and dropped through `psql`, and the server stopped
//! on drop. Debian's PostgreSQL 15 binaries are required (`cargo xtask
//! setup` installs them); without them this fails, it never skips.
//!
//! Run as root (as the tests are), the server runs as the `postgres`
//! system user, which owns the directory: PostgreSQL refuses to run as
//! root. Its `pg_hba.conf` trusts the `postgres` superuser and asks every
//! other role for a password, so tests can check password logins too.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};

use crate::{wait_for, Scratch};

/// Where Debian's postgresql-15 package puts the server's programs.
pub const BIN_DIR: &str = "/usr/lib/postgresql/15/bin";

/// The superuser `initdb` creates, trusted on the socket.
pub const SUPERUSER: &str = "postgres";

/// How long the server may take to accept connections, or to stop.
const READY: Duration = Duration::from_secs(30);

const HBA: &str = "\
# stormboot test server: the superuser is trusted, every other role
# needs its password.
local all postgres trust
local all all scram-sha-256
";

/// One server and its directory; stopped, and the directory removed, on
/// drop.
pub struct Postgres {
    dir: Scratch,
    /// The system user it runs as, when the tests run as root.
    owner: Option<(u32, u32)>,
    server: Option<Child>,
    /// Where it also listens on TCP: a network namespace and an address
    /// in it (see `start_listening`).
    tcp: Option<(PathBuf, String)>,
}

fn program(name: &str) -> anyhow::Result<PathBuf> {
    let path = Path::new(BIN_DIR).join(name);
    if !path.exists() {
        bail!(
            "{} is missing: the PostgreSQL tests need Debian's postgresql-15 \
             (`cargo xtask setup` installs it)",
            path.display()
        );
    }
    Ok(path)
}

/// The uid and gid of `user`, from the password database.
fn user_ids(user: &str) -> anyhow::Result<(u32, u32)> {
    let name = std::ffi::CString::new(user)?;
    // SAFETY: getpwnam takes a NUL-terminated string and returns NULL or a
    // pointer to a static record, read at once, before any other call
    // could overwrite it.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        bail!("no system user {user:?} (Debian's postgresql package creates it)");
    }
    // SAFETY: non-NULL, as checked above.
    let pw = unsafe { &*pw };
    Ok((pw.pw_uid, pw.pw_gid))
}

impl Postgres {
    /// Initializes a cluster in a new scratch directory and starts it.
    /// `name` tells concurrent servers' directories apart.
    pub fn start(name: &str) -> anyhow::Result<Postgres> {
        Postgres::start_with(name, None)
    }

    /// As `start`, but the server runs inside the network namespace
    /// `netns` (a path under /run/netns) and also listens on `address`
    /// there, trusting the superuser from `clients` (a CIDR): nodes in
    /// other namespaces reach it over links a test can cut.
    pub fn start_listening(
        name: &str,
        netns: &Path,
        address: &str,
        clients: &str,
    ) -> anyhow::Result<Postgres> {
        Postgres::start_with(
            name,
            Some((netns.to_path_buf(), address.to_owned(), clients.to_owned())),
        )
    }

    fn start_with(name: &str, tcp: Option<(PathBuf, String, String)>) -> anyhow::Result<Postgres> {
        let initdb = program("initdb")?;
        program("postgres")?;
        let dir = Scratch::new(&format!("pg-{name}"));
        // SAFETY: geteuid cannot fail.
        let owner = if unsafe { libc::geteuid() } == 0 {
            let ids = user_ids(SUPERUSER)?;
            std::os::unix::fs::chown(dir.dir(), Some(ids.0), Some(ids.1))
                .with_context(|| format!("chown {}", dir.dir().display()))?;
            Some(ids)
        } else {
            None
        };
        let mut pg = Postgres {
            dir,
            owner,
            server: None,
            tcp: tcp.as_ref().map(|(ns, addr, _)| (ns.clone(), addr.clone())),
        };
        let mut init = pg.command(&initdb);
        init.args(["--no-sync", "--locale=C", "--encoding=UTF8", "--auth=trust"])
            .args(["--username", SUPERUSER, "--pgdata"])
            .arg(pg.data());
        pg.run(init, "initdb")?;
        let mut hba = HBA.to_owned();
        if let Some((_, _, clients)) = &tcp {
            hba += &format!("host all postgres {clients} trust\n");
        }
        fs::write(pg.data().join("pg_hba.conf"), hba).context("writing pg_hba.conf")?;
        pg.start_again()?;
        Ok(pg)
    }

    /// The directory holding the server's socket: the `host` of a
    /// connection string.
    pub fn socket_dir(&self) -> &Path {
        self.dir.dir()
    }

    fn data(&self) -> PathBuf {
        self.dir.path("data")
    }

    /// A connection string for `database` as `user` (no password).
    pub fn url(&self, database: &str, user: &str) -> String {
        format!(
            "host={} user={user} dbname={database}",
            self.socket_dir().display()
        )
    }

    /// A command that runs as the server's owner, in its directory.
    fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(self.dir.dir());
        if let Some((uid, gid)) = self.owner {
            cmd.uid(uid).gid(gid);
        }
        cmd
    }

    fn run(&self, mut cmd: Command, what: &str) -> anyhow::Result<String> {
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {what}"))?;
        if !out.status.success() {
            bail!(
                "{what} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs `sql` in `database` as the superuser; its rows, one a line,
    /// fields separated by `|`.
    pub fn psql(&self, database: &str, sql: &str) -> anyhow::Result<String> {
        let mut cmd = self.command(&program("psql")?);
        cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .arg("-h")
            .arg(self.socket_dir())
            .args(["-U", SUPERUSER, "-d", database, "-c", sql]);
        self.run(cmd, &format!("psql {sql:?}"))
    }

    pub fn create_database(&self, name: &str) -> anyhow::Result<()> {
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""))
            .map(drop)
    }

    /// Drops `name`, ending its sessions first (a test may leak a store).
    pub fn drop_database(&self, name: &str) -> anyhow::Result<()> {
        self.psql(
            "postgres",
            &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
        )
        .map(drop)
    }

    /// Whether the server accepts connections now.
    pub fn is_ready(&self) -> bool {
        let Ok(ready) = program("pg_isready") else {
            return false;
        };
        Command::new(ready)
            .arg("-h")
            .arg(self.socket_dir())
            .args(["-U", SUPERUSER, "-q"])
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Starts the server on its existing data (after `stop`), and waits
    /// until it accepts connections.
    pub fn start_again(&mut self) -> anyhow::Result<()> {
        if self.server.is_some() {
            bail!("the server is already running");
        }
        let log = self.dir.append_file("postgres.log");
        let postgres = program("postgres")?;
        let mut cmd = match &self.tcp {
            // nsenter joins the namespace before it drops to the owner:
            // joining needs the privileges the owner does not have.
            Some((netns, _)) => {
                let mut cmd = Command::new("nsenter");
                cmd.current_dir(self.dir.dir())
                    .arg(format!("--net={}", netns.display()));
                if let Some((uid, gid)) = self.owner {
                    cmd.args(["-S", &uid.to_string(), "-G", &gid.to_string()]);
                }
                cmd.arg("--").arg(&postgres);
                cmd
            }
            None => self.command(&postgres),
        };
        // Without a namespace, no TCP at all: the socket in the scratch
        // directory only.
        let listen = self.tcp.as_ref().map_or("", |(_, addr)| addr.as_str());
        cmd.arg("-D")
            .arg(self.data())
            .arg("-k")
            .arg(self.socket_dir())
            .arg("-c")
            .arg(format!("listen_addresses={listen}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        self.server = Some(cmd.spawn().context("starting postgres")?);
        if wait_for(READY, || self.is_ready().then_some(())).is_none() {
            let log = self.dir.read("postgres.log");
            let _ = self.stop();
            bail!("postgres did not accept connections within {READY:?}: {log}");
        }
        Ok(())
    }

    /// Stops the server, ending its sessions, and waits for it to exit.
    ///
    /// SIGINT, PostgreSQL's fast shutdown, rather than SIGTERM's smart
    /// one: smart shutdown waits for every client to disconnect, and a
    /// test's store (or one it leaked on purpose) keeps its pool open.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut server) = self.server.take() else {
            return Ok(());
        };
        let pid = libc::pid_t::try_from(server.id())?;
        // SAFETY: kill takes any pid and signal; this child is ours and
        // not yet reaped, so the pid is still its.
        unsafe { libc::kill(pid, libc::SIGINT) };
        if wait_for(READY, || server.try_wait().ok().flatten()).is_none() {
            let _ = server.kill();
            let _ = server.wait();
            bail!("postgres did not stop within {READY:?} of SIGINT; killed it");
        }
        Ok(())
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("stopping the test PostgreSQL server: {e}");
        }
    }
}
