//! Command-line interface: the clap definitions of every subcommand.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "stormboot",
    version,
    about = "DHCP and network-boot server; known machines are answered by XDP"
)]
pub struct Cli {
    /// Log filter (tracing/RUST_LOG syntax), e.g. "info" or "stormboot=debug".
    #[arg(long, env = "STORMBOOT_LOG", default_value = "info", global = true)]
    pub log: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModeArg {
    Driver,
    Skb,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the daemon.
    Serve {
        #[arg(
            long,
            short,
            env = "STORMBOOT_CONFIG",
            default_value = "/etc/stormboot/stormboot.toml"
        )]
        config: PathBuf,
        /// XDP attach mode; overrides server.xdp_mode.
        #[arg(long, env = "STORMBOOT_XDP_MODE")]
        xdp_mode: Option<ModeArg>,
    },
    /// Validate a configuration file and print what it holds.
    CheckConfig {
        #[arg(
            long,
            short,
            env = "STORMBOOT_CONFIG",
            default_value = "/etc/stormboot/stormboot.toml"
        )]
        config: PathBuf,
    },
    /// Show the counters of a running daemon.
    Stats {
        #[command(flatten)]
        daemon: DaemonArgs,
        /// Print JSON.
        #[arg(long, env = "STORMBOOT_JSON")]
        json: bool,
    },
    /// Add, remove, list and show reservations of a running daemon.
    Reservation(crate::api::cmd::ReservationArgs),
    /// List and remove leases of a running daemon.
    Lease(crate::api::cmd::LeaseArgs),
    /// Show what happened to an address (offered, bound, declined, freed),
    /// newest first, from the daemon's store.
    History {
        /// The address.
        ip: String,
        /// At most this many entries, the newest (1 to 1000).
        #[arg(long, env = "STORMBOOT_LIMIT", default_value_t = 50)]
        limit: usize,
        #[command(flatten)]
        daemon: DaemonArgs,
        /// Print JSON.
        #[arg(long, env = "STORMBOOT_JSON")]
        json: bool,
    },
    /// Show the nodes of the daemon's cluster: alive or dead, how far
    /// behind on reservation changes, whether their configuration agrees,
    /// which one leads.
    Cluster {
        #[command(flatten)]
        daemon: DaemonArgs,
        /// Print JSON.
        #[arg(long, env = "STORMBOOT_JSON")]
        json: bool,
    },
    /// Print the configuration another DHCP server needs to send its
    /// machines' boot here (stormboot in `mode = "boot-only"`).
    PrintConfig {
        #[arg(long = "for", value_enum, env = "STORMBOOT_PEER")]
        peer: crate::peerconfig::Peer,
        #[arg(
            long,
            short,
            env = "STORMBOOT_CONFIG",
            default_value = "/etc/stormboot/stormboot.toml"
        )]
        config: PathBuf,
    },
    /// List the machines the daemon has seen, with their last boot phase.
    Machines {
        #[command(flatten)]
        daemon: DaemonArgs,
        /// Print JSON.
        #[arg(long, env = "STORMBOOT_JSON")]
        json: bool,
    },
    /// Print one machine's boot timeline.
    Machine {
        /// The machine's MAC address.
        mac: String,
        #[command(flatten)]
        daemon: DaemonArgs,
        /// Print JSON.
        #[arg(long, env = "STORMBOOT_JSON")]
        json: bool,
    },
    /// Install the systemd unit for this binary and configuration.
    InstallService {
        #[arg(
            long,
            short,
            env = "STORMBOOT_CONFIG",
            default_value = "/etc/stormboot/stormboot.toml"
        )]
        config: PathBuf,
        /// Where the unit file goes.
        #[arg(
            long,
            env = "STORMBOOT_UNIT_DIR",
            default_value = "/etc/systemd/system"
        )]
        unit_dir: PathBuf,
        /// Do not run `systemctl daemon-reload`.
        #[arg(long, env = "STORMBOOT_NO_RELOAD")]
        no_reload: bool,
    },
    /// Remove what a daemon left pinned under bpffs (its XDP links, so this
    /// detaches the program, and its maps). For a stopped daemon: a running
    /// one holds its links open.
    Detach {
        #[arg(
            long,
            short,
            env = "STORMBOOT_CONFIG",
            default_value = "/etc/stormboot/stormboot.toml"
        )]
        config: PathBuf,
    },
    /// Translate another DHCP server's reservations (and subnets) into
    /// stormboot TOML; what cannot be translated is listed on stderr.
    Import(crate::import::ImportArgs),
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff).
    Man,
}

impl From<ModeArg> for crate::config::XdpMode {
    fn from(m: ModeArg) -> Self {
        match m {
            ModeArg::Driver => crate::config::XdpMode::Driver,
            ModeArg::Skb => crate::config::XdpMode::Skb,
        }
    }
}

/// How the CLI finds a running daemon.
#[derive(clap::Args, Debug)]
pub struct DaemonArgs {
    /// The daemon's configuration (its api.listen is used).
    #[arg(
        long,
        short,
        env = "STORMBOOT_CONFIG",
        default_value = "/etc/stormboot/stormboot.toml"
    )]
    pub config: PathBuf,
    /// The daemon's API, `http://127.0.0.1:8067`; overrides the
    /// configuration's api.listen.
    #[arg(long, env = "STORMBOOT_API")]
    pub api: Option<String>,
    /// Bearer token for changes (and for reads, with api.read_token);
    /// overrides the configuration's api.token.
    #[arg(long, env = "STORMBOOT_API_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

impl DaemonArgs {
    pub fn client(&self) -> anyhow::Result<crate::api::client::Client> {
        crate::api::client::Client::find(self.api.as_deref(), self.token.as_deref(), &self.config)
    }

    pub fn addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.client()?.addr)
    }
}
