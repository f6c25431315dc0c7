//! Notification hooks: for every lease commit, renewal, expiry, release and
//! decline, from either dataplane, a configured command is run with the
//! event in its environment (as dnsmasq's dhcp-script) and/or the event is
//! POSTed as JSON to a webhook.
//!
//! The DHCP logic records events (`dhcp::Server::take_events`); the slow
//! path adds where they happened and pushes them here without waiting.
//! One worker runs the hooks, one event at a time and in order, from a
//! bounded queue: when it is full, new events are dropped and counted. A
//! hook that fails, hangs (killed at the timeout, with its whole process
//! group) or refuses the connection is logged and counted; none of it is
//! ever in a DHCP reply's way.

pub mod event;
pub mod webhook;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use event::{HookEvent, Path};

use crate::config::Hooks as HooksConfig;
use crate::leases::LeaseAction;

/// The two kinds of hook, as the metrics label them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Command = 0,
    Webhook = 1,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Command => "command",
            Kind::Webhook => "webhook",
        }
    }
}

/// What the hooks did, for `/metrics`.
#[derive(Default)]
pub struct HookCounters {
    /// Events queued, by `LeaseAction` (in `LeaseAction::ALL` order).
    pub events: [AtomicU64; 5],
    /// Hook runs finished (successful or not), by `Kind`.
    pub runs: [AtomicU64; 2],
    /// Runs that failed: non-zero exit, killed at the timeout, could not
    /// start; refused connection, non-2xx answer, no answer in time.
    pub failures: [AtomicU64; 2],
    /// Of the failures, those that hit the timeout.
    pub timeouts: [AtomicU64; 2],
    /// Events dropped because the queue was full.
    pub dropped: AtomicU64,
}

/// The counters as `stormboot stats --json` and `/metrics` show them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HookStats {
    /// Whether `[hooks]` is configured.
    pub enabled: bool,
    pub events: BTreeMap<String, u64>,
    pub runs: BTreeMap<String, u64>,
    pub failures: BTreeMap<String, u64>,
    pub timeouts: BTreeMap<String, u64>,
    pub dropped: u64,
}

impl HookCounters {
    pub fn stats(&self) -> HookStats {
        let kinds = |a: &[AtomicU64; 2]| {
            [Kind::Command, Kind::Webhook]
                .iter()
                .map(|k| {
                    (
                        k.as_str().to_string(),
                        a[*k as usize].load(Ordering::Relaxed),
                    )
                })
                .collect()
        };
        HookStats {
            enabled: true,
            events: LeaseAction::ALL
                .iter()
                .zip(&self.events)
                .map(|(a, n)| (a.as_str().to_string(), n.load(Ordering::Relaxed)))
                .collect(),
            runs: kinds(&self.runs),
            failures: kinds(&self.failures),
            timeouts: kinds(&self.timeouts),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}

/// Where the slow path hands events; cheap to clone.
#[derive(Clone)]
pub struct Sender {
    tx: mpsc::Sender<HookEvent>,
    counters: Arc<HookCounters>,
}

impl Sender {
    /// Queues `ev` for the hooks, or drops and counts it if the queue is
    /// full. Never waits.
    pub fn push(&self, ev: HookEvent) {
        if let Some(i) = LeaseAction::ALL
            .iter()
            .position(|a| a.as_str() == ev.action)
        {
            self.counters.events[i].fetch_add(1, Ordering::Relaxed);
        }
        if let Err(e) = self.tx.try_send(ev) {
            let n = self.counters.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            // Once per power of two: a stuck hook must not flood the log.
            if n.is_power_of_two() {
                let ev = match e {
                    mpsc::error::TrySendError::Full(ev) | mpsc::error::TrySendError::Closed(ev) => {
                        ev
                    }
                };
                tracing::warn!(dropped = n, action = ev.action, mac = %ev.mac, ip = %ev.ip, "hook queue full: lease event dropped");
            }
        }
    }
}

/// The hooks' worker and its queue.
pub struct Hooks {
    cfg: HooksConfig,
    rx: mpsc::Receiver<HookEvent>,
    counters: Arc<HookCounters>,
    /// The webhook's client, built when the worker starts; the error, if
    /// it could not be, is each POST's failure.
    http: Option<Result<reqwest::Client, String>>,
}

/// The queue and its worker for `cfg`; run the worker with [`Hooks::run`].
pub fn start(cfg: &HooksConfig) -> (Sender, Hooks, Arc<HookCounters>) {
    tracing::info!(
        command = cfg.command.as_ref().map(|p| p.display().to_string()),
        webhook = cfg.webhook.as_ref().map(|w| w.url.as_str()),
        timeout = ?cfg.timeout,
        queue = cfg.queue,
        "lease hooks"
    );
    let (tx, rx) = mpsc::channel(cfg.queue.max(1));
    let counters = Arc::new(HookCounters::default());
    (
        Sender {
            tx,
            counters: counters.clone(),
        },
        Hooks {
            cfg: cfg.clone(),
            rx,
            counters: counters.clone(),
            http: None,
        },
        counters,
    )
}

impl Hooks {
    /// Runs the hooks of each queued event, in order, until `shutdown`;
    /// what is still queued then is dropped (and said so).
    pub async fn run(mut self, shutdown: CancellationToken) -> std::io::Result<()> {
        self.http = self.cfg.webhook.as_ref().map(|w| {
            crate::httpclient::async_client(w.ca.as_deref()).map_err(|e| {
                tracing::error!(webhook = %w.url, "{e:#}");
                format!("{e:#}")
            })
        });
        loop {
            let ev = tokio::select! {
                ev = self.rx.recv() => match ev {
                    Some(ev) => ev,
                    None => return Ok(()),
                },
                _ = shutdown.cancelled() => break,
            };
            // The command and the webhook of one event run side by side;
            // a shutdown abandons them (the command's group is killed).
            tokio::select! {
                _ = self.one(&ev) => {}
                _ = shutdown.cancelled() => break,
            }
        }
        self.rx.close();
        let mut left = 0;
        while self.rx.try_recv().is_ok() {
            left += 1;
        }
        if left > 0 {
            tracing::warn!(events = left, "hooks not run: the daemon is stopping");
        }
        Ok(())
    }

    async fn one(&self, ev: &HookEvent) {
        let command = async {
            if let Some(path) = &self.cfg.command {
                let r = run_command(path, ev, self.cfg.timeout).await;
                self.count(Kind::Command, ev, r);
            }
        };
        let webhook = async {
            if let (Some(hook), Some(http)) = (&self.cfg.webhook, &self.http) {
                let r = match http {
                    Err(e) => Err(Failure::Error(e.clone())),
                    Ok(http) => match tokio::time::timeout(
                        self.cfg.timeout,
                        webhook::post(http, hook, ev.json()),
                    )
                    .await
                    {
                        Ok(Ok(_)) => Ok(()),
                        Ok(Err(e)) => Err(Failure::Error(e.to_string())),
                        Err(_) => Err(Failure::Timeout),
                    },
                };
                self.count(Kind::Webhook, ev, r);
            }
        };
        tokio::join!(command, webhook);
    }

    fn count(&self, kind: Kind, ev: &HookEvent, r: Result<(), Failure>) {
        let i = kind as usize;
        self.counters.runs[i].fetch_add(1, Ordering::Relaxed);
        let Err(f) = r else {
            tracing::debug!(hook = kind.as_str(), action = ev.action, mac = %ev.mac, ip = %ev.ip, "hook ran");
            return;
        };
        self.counters.failures[i].fetch_add(1, Ordering::Relaxed);
        let f = match f {
            Failure::Timeout => {
                self.counters.timeouts[i].fetch_add(1, Ordering::Relaxed);
                let what = match kind {
                    Kind::Command => "killed with its process group",
                    Kind::Webhook => "connection abandoned",
                };
                format!("timed out after {:?}: {what}", self.cfg.timeout)
            }
            Failure::Error(e) => e,
        };
        tracing::warn!(
            hook = kind.as_str(),
            action = ev.action,
            mac = %ev.mac,
            ip = %ev.ip,
            error = %f,
            "hook failed"
        );
    }
}

/// Why a run failed.
#[derive(Debug, PartialEq, Eq)]
enum Failure {
    /// `hooks.timeout` passed first.
    Timeout,
    /// Anything else, said as the log should say it.
    Error(String),
}

/// Runs the command for `ev` in a process group of its own, so that at the
/// timeout the script and everything it started are killed together.
async fn run_command(
    path: &std::path::Path,
    ev: &HookEvent,
    timeout: Duration,
) -> Result<(), Failure> {
    let mut cmd = tokio::process::Command::new(path);
    // The daemon's own STORMBOOT_* settings (STORMBOOT_LOG, ...) would read
    // as event fields: the script sees only the documented ones.
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("STORMBOOT_") {
            cmd.env_remove(k);
        }
    }
    cmd.args(ev.args())
        .envs(ev.env())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    // SAFETY: only getrlimit/setrlimit run between fork and exec.
    unsafe { cmd.pre_exec(crate::limits::restore_for_child) };
    let mut child = cmd
        .spawn()
        .map_err(|e| Failure::Error(format!("{}: {e}", path.display())))?;
    // Until the script is done, dropping this (at the timeout, or when the
    // daemon stops) kills the script's whole group.
    let mut group = Group(child.id().and_then(|p| i32::try_from(p).ok()));
    let r = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(Failure::Error(format!("{}: {status}", path.display()))),
        Ok(Err(e)) => Err(Failure::Error(format!("{}: {e}", path.display()))),
        Err(_) => {
            group.kill();
            let _ = child.wait().await;
            return Err(Failure::Timeout);
        }
    };
    // Done: what it started in the background is its own business.
    group.0 = None;
    r
}

/// A hook's process group, killed on drop unless disarmed.
struct Group(Option<i32>);

impl Group {
    fn kill(&mut self) {
        if let Some(pgid) = self.0.take() {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pgid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::leases::{Lease, LeaseEvent, LeaseState};

    fn event(action: LeaseAction, last: u8) -> HookEvent {
        let lease = Lease {
            ip: std::net::Ipv4Addr::new(10, 50, 0, last),
            client_id: vec![1, 2, 0, 0, 0, 0, last],
            mac: [2, 0, 0, 0, 0, last],
            state: LeaseState::Bound,
            expires: 4_600,
            updated: 1_000,
            hostname: Some(format!("n{last}")),
        };
        HookEvent::new(
            &LeaseEvent { action, lease },
            Path::Userspace,
            Some("sb0".into()),
            None,
            1_000,
        )
    }

    fn script(dir: &std::path::Path, body: &str) -> std::path::PathBuf {
        let p = dir.join("hook.sh");
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    fn config(command: std::path::PathBuf, timeout: u64, queue: usize) -> HooksConfig {
        HooksConfig {
            command: Some(command),
            webhook: None,
            timeout: Duration::from_secs(timeout),
            queue,
        }
    }

    /// Polls until `f` holds, for up to 10 s.
    async fn until(mut f: impl FnMut() -> bool) {
        for _ in 0..200 {
            if f() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("condition not met in 10 s");
    }

    #[tokio::test]
    async fn command_runs_in_order_with_the_events_environment() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let hook = script(
            dir.path(),
            &format!(
                "echo \"$1 $2 $3 $4|$STORMBOOT_ACTION|$STORMBOOT_IP|$STORMBOOT_INTERFACE\" >> {}\n\
                 [ \"$1\" = commit ]",
                out.display()
            ),
        );
        let (tx, hooks, counters) = start(&config(hook, 5, 8));
        let stop = CancellationToken::new();
        let worker = tokio::spawn(hooks.run(stop.clone()));
        tx.push(event(LeaseAction::Commit, 5));
        tx.push(event(LeaseAction::Release, 6));
        until(|| counters.runs[0].load(Ordering::Relaxed) == 2).await;
        let text = std::fs::read_to_string(&out).unwrap();
        assert_eq!(
            text,
            "commit 02:00:00:00:00:05 10.50.0.5 n5|commit|10.50.0.5|sb0\n\
             release 02:00:00:00:00:06 10.50.0.6 n6|release|10.50.0.6|sb0\n"
        );
        // The release run exits 1: a failure, counted.
        let s = counters.stats();
        assert_eq!(
            (
                s.runs["command"],
                s.failures["command"],
                s.timeouts["command"]
            ),
            (2, 1, 0)
        );
        assert_eq!(
            (s.events["commit"], s.events["release"], s.dropped),
            (1, 1, 0)
        );
        stop.cancel();
        worker.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_hung_command_is_killed_with_its_children_and_a_full_queue_drops() {
        let dir = tempfile::tempdir().unwrap();
        let pids = dir.path().join("pids");
        // The script's child (sleep) must die with it.
        let hook = script(
            dir.path(),
            &format!("sleep 30 &\necho $! >> {}\nwait", pids.display()),
        );
        let (tx, hooks, counters) = start(&config(hook, 1, 1));
        let stop = CancellationToken::new();
        let worker = tokio::spawn(hooks.run(stop.clone()));
        let t0 = std::time::Instant::now();
        for last in 1..=5 {
            tx.push(event(LeaseAction::Commit, last));
        }
        // Pushing never waits for the hooks.
        assert!(
            t0.elapsed() < Duration::from_millis(500),
            "{:?}",
            t0.elapsed()
        );
        // The worker has not taken any yet (this runtime has one thread
        // and the test has not yielded): one queued, four dropped.
        until(|| counters.runs[0].load(Ordering::Relaxed) == 1).await;
        let s = counters.stats();
        assert_eq!(
            (s.failures["command"], s.timeouts["command"], s.dropped),
            (1, 1, 4)
        );
        assert_eq!(s.events["commit"], 5);
        for pid in std::fs::read_to_string(&pids).unwrap().lines() {
            let alive = std::path::Path::new(&format!("/proc/{pid}")).exists()
                && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .unwrap_or_default()
                    .contains(") Z ");
            assert!(!alive, "the hook's child {pid} outlived the timeout");
        }
        stop.cancel();
        worker.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn webhook_refused_is_a_counted_failure() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cfg = HooksConfig {
            command: None,
            webhook: Some(
                crate::config::parse_webhook(&format!("http://127.0.0.1:{port}/")).unwrap(),
            ),
            timeout: Duration::from_secs(2),
            queue: 4,
        };
        let (tx, hooks, counters) = start(&cfg);
        let stop = CancellationToken::new();
        let worker = tokio::spawn(hooks.run(stop.clone()));
        tx.push(event(LeaseAction::Expiry, 9));
        until(|| counters.runs[1].load(Ordering::Relaxed) == 1).await;
        let s = counters.stats();
        assert_eq!(
            (
                s.failures["webhook"],
                s.timeouts["webhook"],
                s.runs["command"]
            ),
            (1, 0, 0)
        );
        stop.cancel();
        worker.await.unwrap().unwrap();
    }
}
