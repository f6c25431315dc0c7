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
