//! The JSON shapes of the control-plane API, in one place: what a client
//! (the CLI, an importer posting to `/api/v1/reservations/bulk`) sends and
//! receives. Addresses and MACs are strings here, so that a bad one is
//! reported naming its field rather than by serde's generic message.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// A reservation as a client writes it (create, replace, bulk import).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReservationSpec {
    /// The machine's MAC address, `52:54:00:12:34:56` (or with `-`). On
    /// `PUT /api/v1/reservations/{mac}` it may be left out; if given it
    /// must equal the path's.
    #[serde(default)]
    #[schema(example = "52:54:00:12:34:56")]
    pub mac: String,
    /// The address it always gets; must lie inside a configured subnet.
    #[schema(example = "10.0.0.20")]
    pub ip: String,
    /// Option 12; a DNS name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The name of a `[[profile]]` of the daemon's configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Custom DHCP options, as in the config file's `[[reservation.option]]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<OptionSpec>,
    /// false: plain DHCP only, never boot information (absent: true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_pxe: Option<bool>,
    /// A boot file for this machine alone, given whatever its
    /// architecture (ISC dhcpd's host `filename`); replaces the profile's
    /// boot files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_file: Option<String>,
    /// The next server (siaddr, option 66) for `boot_file`; the server's
    /// address when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_server: Option<String>,
    /// The host's name in OMAPI and in the dhcpd.leases export; set by
    /// OMAPI clients only (a reservation that has one is OMAPI's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub omapi_name: Option<String>,
    /// What the dashboard can group machines by besides their subnet (a
    /// rack, a row, a role): 1 to 64 characters, no commas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "rack-12")]
    pub label: Option<String>,
}

/// A custom DHCP option: `type` says how `value` is encoded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OptionSpec {
    /// 1..=254, not one the server sets itself.
    pub code: i64,
    /// ipv4-list, ipv4, u8, u16, u32, bool, string or hex.
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
}

/// Who owns a reservation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Written in the config file (or its reservations file): read-only
    /// through the API; change the file and restart.
    Config,
    /// Made through the API and kept in the lease database.
    Api,
    /// Made over OMAPI (omshell, Foreman, pypureomapi) and kept in the
    /// lease database.
    Omapi,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Config => "config",
            Source::Api => "api",
            Source::Omapi => "omapi",
        }
    }
}

/// A reservation as the daemon reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReservationView {
    #[serde(flatten)]
    pub spec: ReservationSpec,
    /// The subnet `ip` lies in.
    #[schema(example = "10.0.0.0/24")]
    pub subnet: String,
    pub source: Source,
    /// Where it was written: `file:line`, or `api`.
    pub origin: String,
}

/// One page of reservations, in MAC order.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ReservationPage {
    pub items: Vec<ReservationView>,
    /// Pass as `after` for the next page; absent on the last one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// Reservations matching the filters, on every page.
    pub total: usize,
}

/// Filters and paging of `GET /api/v1/reservations`.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReservationQuery {
    /// At most this many items (default 100, at most 10000).
    pub limit: Option<usize>,
    /// Only MACs after this one (the previous page's `next`).
    pub after: Option<String>,
    /// Only this subnet (its CIDR).
    pub subnet: Option<String>,
    /// Only this profile.
    pub profile: Option<String>,
    /// Only `config` or only `api` entries.
    pub source: Option<String>,
    /// Only host names containing this text.
    pub hostname: Option<String>,
}

/// The result of a bulk import.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct BulkResult {
    /// Entries that did not exist before.
    pub created: usize,
    /// Existing API entries replaced.
    pub replaced: usize,
}

/// A lease as the daemon reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LeaseView {
    pub ip: String,
    pub mac: String,
    /// offered, bound or declined.
    pub state: String,
    /// Unix seconds.
    pub expires: u64,
    /// Unix seconds.
    pub updated: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The client identifier, hex.
    pub client_id: String,
}

/// One page of leases, in address order.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct LeasePage {
    pub items: Vec<LeaseView>,
    /// Pass as `after` for the next page; absent on the last one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    pub total: usize,
}

/// Filters and paging of `GET /api/v1/leases`.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LeaseQuery {
    /// At most this many items (default 100, at most 10000).
    pub limit: Option<usize>,
    /// Only addresses after this one (the previous page's `next`).
    pub after: Option<String>,
    /// Only this subnet (its CIDR).
    pub subnet: Option<String>,
    /// Only this state.
    pub state: Option<String>,
    /// Only this machine.
    pub mac: Option<String>,
}

/// A configured subnet.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct SubnetView {
    #[schema(example = "10.0.0.0/24")]
    pub cidr: String,
    pub routers: Vec<String>,
    pub dns: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Seconds.
    pub lease_time: u64,
    /// Pool ranges, `first-last`.
    pub pools: Vec<String>,
    /// Addresses the pools hold (leased, offered or declined).
    pub pool_used: usize,
    /// Addresses the pools can give.
    pub pool_size: usize,
    /// Reservations on this subnet.
    pub reservations: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    pub authoritative: bool,
}

/// Every 4xx and 5xx answer of the API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApiError {
    /// What went wrong, for a person.
    pub error: String,
    /// The request field at fault (`ip`, `[3].mac`, `limit`), when one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// `GET /api/v1/cluster`: the nodes sharing this node's database, as this
/// node last read them there, and this node's own state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ClusterView {
    /// This node's name (`cluster.node`).
    pub node: String,
    /// Whether this node's last heartbeat reached the database. While it
    /// does not, the nodes below are as last read, aged by this node's
    /// clock, and the membership it shares new clients by stays as it was.
    pub store_reachable: bool,
    /// Why the last heartbeat failed, while the database is unreachable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_error: Option<String>,
    /// Seconds since the database was last reached; absent before the
    /// first heartbeat got through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_secs_ago: Option<f64>,
    /// The node holding the leader's lock (it prunes for everyone), when
    /// one does and its session shows its name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    /// The latest reservation change number in the database.
    pub latest_change: i64,
    /// Removals up to this change number may have been pruned: a node that
    /// applied less must reload every reservation.
    pub pruned_through: i64,
    /// How long a node may be silent before it counts as dead (seconds).
    pub dead_after_secs: f64,
    /// Hash of this node's shared configuration (`config_hash` below).
    pub config_hash: String,
    /// Every node with a row, alive or dead, by name.
    pub nodes: Vec<NodeView>,
}

/// One node of `ClusterView`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NodeView {
    pub node: String,
    /// Its heartbeat is recent (by the database's clock when read).
    pub alive: bool,
    /// Seconds since its last heartbeat.
    pub last_seen_secs_ago: f64,
    /// Its server identifiers (option 54).
    pub addresses: Vec<String>,
    pub version: String,
    /// Unix seconds.
    pub started: u64,
    /// The last reservation change it applied.
    pub applied_change: i64,
    /// `latest_change - applied_change`.
    pub changes_behind: i64,
    /// SHA-256 of the settings every node must share (subnets, profiles,
    /// the file's reservations, offer and decline times, cluster timings).
    pub config_hash: String,
    /// Its hash is this node's.
    pub config_agrees: bool,
    /// It holds the leader's lock.
    pub leader: bool,
    /// It is the node answering this request.
    pub this_node: bool,
}

/// `GET /api/v1/addresses/{ip}/history`: what happened to an address,
/// newest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AddressHistory {
    pub ip: String,
    pub items: Vec<AddressEventView>,
}

/// One entry of an address's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AddressEventView {
    /// offered, bound, declined or freed (released, expired or removed).
    pub event: String,
    pub mac: String,
    /// The client identifier, hex.
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The node that wrote the lease, in a cluster that records it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The lease's expiry, Unix seconds.
    pub expires: u64,
    /// When it happened, Unix seconds (the store's clock).
    pub at: u64,
}

/// Paging of `GET /api/v1/addresses/{ip}/history`.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// At most this many entries, the newest (default 50, at most 1000).
    pub limit: Option<usize>,
}
