//! The `/api/v1/` handlers for subnets, reservations and leases. Each is
//! annotated with its OpenAPI description, from which `/openapi.json` is
//! generated. Bodies and queries are decoded here (not by axum's
//! extractors) so that a bad value is answered with the field it is in.

use std::net::Ipv4Addr;

use axum::{
    body::Bytes,
    extract::{Path, RawQuery},
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use serde::de::DeserializeOwned;

use super::registry::{limit, parse_mac_field, ErrorKind, FieldError, Mode};
use super::types::*;
use super::{Cluster, Dhcp, History};
use crate::frame::format_mac;
use crate::leases::Lease;

/// A refused request, as JSON.
pub struct Failure(pub FieldError);

impl From<FieldError> for Failure {
    fn from(e: FieldError) -> Self {
        Failure(e)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let status = match self.0.kind {
            ErrorKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        };
        let body = ApiError {
            error: match &self.0.field {
                Some(f) => format!("{f}: {}", self.0.message),
                None => self.0.message.clone(),
            },
            field: self.0.field,
        };
        (status, Json(body)).into_response()
    }
}

/// A body that is not JSON of the expected shape: 400, naming the field
/// serde stopped at (`options[0].code`, or the missing one).
fn decode_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, BadRequest> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let message = e.inner().to_string();
        BadRequest {
            field: field_of(&e.path().to_string(), &message),
            message,
        }
    })
}

fn decode_query<T: DeserializeOwned + Default>(q: Option<String>) -> Result<T, BadRequest> {
    let Some(q) = q else {
        return Ok(T::default());
    };
    let de = serde_urlencoded::Deserializer::new(form_urlencoded_parse(&q));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let message = e.inner().to_string();
        BadRequest {
            field: field_of(&e.path().to_string(), &message),
            message,
        }
    })
}

fn form_urlencoded_parse(q: &str) -> form_urlencoded::Parse<'_> {
    form_urlencoded::parse(q.as_bytes())
}

/// The field an error is about: serde's path, or, for a missing or
/// unknown field (reported at the parent), the name in the message.
fn field_of(path: &str, message: &str) -> Option<String> {
    let named = ["missing field `", "unknown field `"]
        .iter()
        .find_map(|p| message.split_once(p))
        .and_then(|(_, rest)| rest.split_once('`'))
        .map(|(name, _)| name);
    let path = (path != "." && !path.is_empty()).then(|| path.to_string());
    match (path, named) {
        (Some(p), Some(n)) if p == n || p.ends_with(&format!(".{n}")) => Some(p),
        (Some(p), Some(n)) => Some(format!("{p}.{n}")),
        (Some(p), None) => Some(p),
        (None, Some(n)) => Some(n.to_string()),
        (None, None) => None,
    }
}

/// A body or query that does not decode: 400.
#[derive(Debug)]
pub struct BadRequest {
    field: Option<String>,
    message: String,
}

impl IntoResponse for BadRequest {
    fn into_response(self) -> Response {
        // JSON that does not parse at all is about the body as a whole.
        let field = self.field.unwrap_or_else(|| "body".into());
        let error = format!("{field}: {}", self.message);
        let field = Some(field);
        (StatusCode::BAD_REQUEST, Json(ApiError { error, field })).into_response()
    }
}

fn path_mac(text: &str) -> Result<[u8; 6], Failure> {
    parse_mac_field(text).map_err(Failure)
}

fn path_ip(text: &str) -> Result<Ipv4Addr, Failure> {
    text.parse().map_err(|_| {
        Failure(FieldError::invalid(
            "ip",
            format!("{text:?} is not an IPv4 address"),
        ))
    })
}

macro_rules! try_decode {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(r) => return r.into_response(),
        }
    };
}

fn respond<T: serde::Serialize>(r: Result<T, FieldError>, ok: StatusCode) -> Response {
    match r {
        Ok(v) => (ok, Json(v)).into_response(),
        Err(e) => Failure(e).into_response(),
    }
}

#[utoipa::path(
    get, path = "/api/v1/subnets", tag = "subnets",
    responses((status = 200, description = "The configured subnets", body = [SubnetView]))
)]
pub async fn list_subnets(Dhcp(live): Dhcp) -> Response {
    respond(live.subnets().await, StatusCode::OK)
}

#[utoipa::path(
    get, path = "/api/v1/subnets/{network}", tag = "subnets",
    params(("network" = String, Path, description = "The subnet's network address (10.0.0.0) or CIDR (10.0.0.0%2F24)")),
    responses(
        (status = 200, description = "The subnet", body = SubnetView),
        (status = 404, description = "No such subnet", body = ApiError),
    )
)]
pub async fn get_subnet(Dhcp(live): Dhcp, Path(network): Path<String>) -> Response {
    let all = match live.subnets().await {
        Ok(v) => v,
        Err(e) => return Failure(e).into_response(),
    };
    let wanted = network.split('/').next().unwrap_or_default().to_string();
    match all
        .into_iter()
        .find(|s| s.cidr == network || s.cidr.split('/').next() == Some(wanted.as_str()))
    {
        Some(s) => (StatusCode::OK, Json(s)).into_response(),
        None => Failure(FieldError {
            kind: ErrorKind::NotFound,
            field: Some("network".into()),
            message: format!("{network} is not a configured subnet"),
        })
        .into_response(),
    }
}

#[utoipa::path(
    get, path = "/api/v1/reservations", tag = "reservations",
    params(ReservationQuery),
    responses(
        (status = 200, description = "One page of reservations, in MAC order", body = ReservationPage),
        (status = 400, description = "A query parameter is malformed", body = ApiError),
        (status = 422, description = "A query parameter is not acceptable", body = ApiError),
    )
)]
pub async fn list_reservations(Dhcp(live): Dhcp, RawQuery(q): RawQuery) -> Response {
    let q: ReservationQuery = try_decode!(decode_query(q));
    respond(
        super::registry::page(&live.published().load(), &q),
        StatusCode::OK,
    )
}

#[utoipa::path(
    get, path = "/api/v1/reservations/{mac}", tag = "reservations",
    params(("mac" = String, Path, description = "The machine's MAC address")),
    responses(
        (status = 200, description = "The reservation", body = ReservationView),
        (status = 404, description = "No reservation for this MAC", body = ApiError),
    )
)]
pub async fn get_reservation(Dhcp(live): Dhcp, Path(mac): Path<String>) -> Response {
    let mac = match path_mac(&mac) {
        Ok(m) => m,
        Err(f) => return f.into_response(),
    };
    let book = live.published().load();
    match book.get(&mac) {
        Some(e) => (StatusCode::OK, Json(super::registry::view(&book, e))).into_response(),
        None => Failure(FieldError {
            kind: ErrorKind::NotFound,
            field: Some("mac".into()),
            message: format!("{} has no reservation", format_mac(&mac)),
        })
        .into_response(),
    }
}

#[utoipa::path(
    post, path = "/api/v1/reservations", tag = "reservations",
    request_body = ReservationSpec,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created; the XDP program and the userspace server answer it already", body = ReservationView),
        (status = 400, description = "The body is not a reservation", body = ApiError),
        (status = 401, description = "No or a wrong bearer token", body = ApiError),
        (status = 409, description = "The MAC or IP is reserved already", body = ApiError),
        (status = 422, description = "A field is not acceptable", body = ApiError),
        (status = 503, description = "The reservation store cannot be reached; nothing was changed, try again", body = ApiError),
    )
)]
pub async fn create_reservation(Dhcp(live): Dhcp, body: Bytes) -> Response {
    let spec: ReservationSpec = try_decode!(decode_body(&body));
    respond(
        live.put(&spec, Mode::Create, None).await,
        StatusCode::CREATED,
    )
}

#[utoipa::path(
    put, path = "/api/v1/reservations/{mac}", tag = "reservations",
    params(("mac" = String, Path, description = "The machine's MAC address")),
    request_body = ReservationSpec,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Replaced; in effect already", body = ReservationView),
        (status = 400, description = "The body is not a reservation", body = ApiError),
        (status = 401, description = "No or a wrong bearer token", body = ApiError),
        (status = 404, description = "No reservation for this MAC", body = ApiError),
        (status = 409, description = "A config-file reservation, or the IP is taken", body = ApiError),
        (status = 422, description = "A field is not acceptable", body = ApiError),
        (status = 503, description = "The reservation store cannot be reached; nothing was changed, try again", body = ApiError),
    )
)]
pub async fn replace_reservation(
    Dhcp(live): Dhcp,
    Path(mac): Path<String>,
    body: Bytes,
) -> Response {
    let mac = match path_mac(&mac) {
        Ok(m) => m,
        Err(f) => return f.into_response(),
    };
    let spec: ReservationSpec = try_decode!(decode_body(&body));
    respond(
        live.put(&spec, Mode::Replace, Some(mac)).await,
        StatusCode::OK,
    )
}

#[utoipa::path(
    delete, path = "/api/v1/reservations/{mac}", tag = "reservations",
    params(("mac" = String, Path, description = "The machine's MAC address")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Removed; the machine's requests are passed to the userspace server"),
        (status = 401, description = "No or a wrong bearer token", body = ApiError),
        (status = 404, description = "No reservation for this MAC", body = ApiError),
        (status = 409, description = "A config-file reservation", body = ApiError),
        (status = 503, description = "The reservation store cannot be reached; nothing was changed, try again", body = ApiError),
    )
)]
pub async fn delete_reservation(Dhcp(live): Dhcp, Path(mac): Path<String>) -> Response {
    let mac = match path_mac(&mac) {
        Ok(m) => m,
        Err(f) => return f.into_response(),
    };
    match live.delete(mac).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => Failure(e).into_response(),
    }
}

#[utoipa::path(
    post, path = "/api/v1/reservations/bulk", tag = "reservations",
    request_body = Vec<ReservationSpec>,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "All created or replaced (all or none)", body = BulkResult),
        (status = 400, description = "The body is not an array of reservations", body = ApiError),
        (status = 401, description = "No or a wrong bearer token", body = ApiError),
        (status = 409, description = "An entry clashes; its index is in the field", body = ApiError),
        (status = 422, description = "An entry's field is not acceptable; `[i].field`", body = ApiError),
        (status = 503, description = "The reservation store cannot be reached; nothing was changed, try again", body = ApiError),
    )
)]
pub async fn bulk_reservations(Dhcp(live): Dhcp, body: Bytes) -> Response {
    let specs: Vec<ReservationSpec> = try_decode!(decode_body(&body));
    respond(live.bulk(&specs).await, StatusCode::OK)
}

pub fn lease_view(l: &Lease) -> LeaseView {
    LeaseView {
        ip: l.ip.to_string(),
        mac: format_mac(&l.mac),
        state: l.state.as_str().into(),
        expires: l.expires,
        updated: l.updated,
        hostname: l.hostname.clone(),
        client_id: l.client_id.iter().map(|b| format!("{b:02x}")).collect(),
    }
}

/// One page of `leases` (sorted by address) matching `q`.
pub fn lease_page(leases: &[Lease], q: &LeaseQuery) -> Result<LeasePage, FieldError> {
    let limit = limit(q.limit)?;
    let after =
        match q.after.as_deref() {
            None | Some("") => None,
            Some(t) => Some(t.parse::<Ipv4Addr>().map_err(|_| {
                FieldError::invalid("after", format!("{t:?} is not an IPv4 address"))
            })?),
        };
    let subnet = match q.subnet.as_deref() {
        None | Some("") => None,
        Some(t) => Some(
            t.parse::<ipnet::Ipv4Net>()
                .map_err(|_| FieldError::invalid("subnet", format!("{t:?} is not a CIDR")))?,
        ),
    };
    let state = match q.state.as_deref() {
        None | Some("") => None,
        Some(t) => Some(crate::leases::LeaseState::parse(t).ok_or_else(|| {
            FieldError::invalid(
                "state",
                format!("{t:?} is not one of \"offered\", \"bound\", \"declined\""),
            )
        })?),
    };
    let mac = match q.mac.as_deref() {
        None | Some("") => None,
        Some(t) => Some(parse_mac_field(t)?),
    };
    let keep = |l: &&Lease| {
        subnet.is_none_or(|n| n.contains(&l.ip))
            && state.is_none_or(|s| l.state == s)
            && mac.is_none_or(|m| l.mac == m)
    };
    let total = leases.iter().filter(keep).count();
    let mut items = Vec::new();
    let mut more = false;
    for l in leases
        .iter()
        .filter(|l| after.is_none_or(|a| u32::from(l.ip) > u32::from(a)))
        .filter(keep)
    {
        if items.len() == limit {
            more = true;
            break;
        }
        items.push(lease_view(l));
    }
    let next = more.then(|| items.last().map(|v| v.ip.clone())).flatten();
    Ok(LeasePage { items, next, total })
}

#[utoipa::path(
    get, path = "/api/v1/leases", tag = "leases",
    params(LeaseQuery),
    responses(
        (status = 200, description = "One page of leases, in address order", body = LeasePage),
        (status = 400, description = "A query parameter is malformed", body = ApiError),
        (status = 422, description = "A query parameter is not acceptable", body = ApiError),
    )
)]
pub async fn list_leases(Dhcp(live): Dhcp, RawQuery(q): RawQuery) -> Response {
    let q: LeaseQuery = try_decode!(decode_query(q));
    let leases = match live.leases().await {
        Ok(l) => l,
        Err(e) => return Failure(e).into_response(),
    };
    respond(lease_page(&leases, &q), StatusCode::OK)
}

#[utoipa::path(
    get, path = "/api/v1/leases/{ip}", tag = "leases",
    params(("ip" = String, Path, description = "The leased address")),
    responses(
        (status = 200, description = "The lease", body = LeaseView),
        (status = 404, description = "No lease on this address", body = ApiError),
    )
)]
pub async fn get_lease(Dhcp(live): Dhcp, Path(ip): Path<String>) -> Response {
    let ip = match path_ip(&ip) {
        Ok(i) => i,
        Err(f) => return f.into_response(),
    };
    let leases = match live.leases().await {
        Ok(l) => l,
        Err(e) => return Failure(e).into_response(),
    };
    match leases.iter().find(|l| l.ip == ip) {
        Some(l) => (StatusCode::OK, Json(lease_view(l))).into_response(),
        None => Failure(FieldError {
            kind: ErrorKind::NotFound,
            field: Some("ip".into()),
            message: format!("{ip} has no lease"),
        })
        .into_response(),
    }
}

#[utoipa::path(
    delete, path = "/api/v1/leases/{ip}", tag = "leases",
    params(("ip" = String, Path, description = "The leased address")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Removed (durably); the address is free again", body = LeaseView),
        (status = 401, description = "No or a wrong bearer token", body = ApiError),
        (status = 404, description = "No lease on this address", body = ApiError),
    )
)]
pub async fn delete_lease(Dhcp(live): Dhcp, Path(ip): Path<String>) -> Response {
    let ip = match path_ip(&ip) {
        Ok(i) => i,
        Err(f) => return f.into_response(),
    };
    respond(
        live.remove_lease(ip).await.map(|l| lease_view(&l)),
        StatusCode::OK,
    )
}

/// The default number of history entries: a screenful.
const HISTORY_DEFAULT: usize = 50;

#[utoipa::path(
    get, path = "/api/v1/addresses/{ip}/history", tag = "leases",
    params(("ip" = String, Path, description = "The address"), HistoryQuery),
    responses(
        (status = 200, description = "What happened to the address, newest first: offered, bound, declined, freed", body = AddressHistory),
        (status = 400, description = "A query parameter is malformed", body = ApiError),
        (status = 422, description = "Not an address, or a limit out of range", body = ApiError),
        (status = 500, description = "The store could not be read", body = ApiError),
    )
)]
pub async fn address_history(
    History(store): History,
    Path(ip): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let ip = match path_ip(&ip) {
        Ok(i) => i,
        Err(f) => return f.into_response(),
    };
    let q: HistoryQuery = try_decode!(decode_query(q));
    let limit = q.limit.unwrap_or(HISTORY_DEFAULT);
    if !(1..=crate::store::history::MAX_LIMIT).contains(&limit) {
        return Failure(FieldError::invalid(
            "limit",
            format!(
                "{limit} is not between 1 and {}",
                crate::store::history::MAX_LIMIT
            ),
        ))
        .into_response();
    }
    let records = match store.history(ip, limit).await {
        Ok(r) => r,
        Err(e) => {
            return Failure(FieldError {
                kind: ErrorKind::Internal,
                field: None,
                message: e.to_string(),
            })
            .into_response()
        }
    };
    let items = records
        .into_iter()
        .map(|r| AddressEventView {
            event: r.event.as_str().into(),
            mac: format_mac(&r.mac),
            client_id: r.client_id.iter().map(|b| format!("{b:02x}")).collect(),
            hostname: r.hostname,
            node: r.node,
            expires: r.expires,
            at: r.at,
        })
        .collect();
    let body = AddressHistory {
        ip: ip.to_string(),
        items,
    };
    (StatusCode::OK, Json(body)).into_response()
}

#[utoipa::path(
    get, path = "/api/v1/cluster", tag = "cluster",
    responses(
        (status = 200, description = "The nodes as this node last read them in the database, and its own state", body = ClusterView),
        (status = 404, description = "This daemon is in no cluster", body = ApiError),
    )
)]
pub async fn cluster(Cluster(status): Cluster) -> Response {
    let view = status.borrow().view(std::time::Instant::now());
    (StatusCode::OK, Json(view)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_errors_name_the_field() {
        let e = |body: &str| -> (StatusCode, ApiError) {
            let r = decode_body::<ReservationSpec>(&Bytes::from(body.to_string()))
                .unwrap_err()
                .into_response();
            let status = r.status();
            let body =
                futures_lite::future::block_on(axum::body::to_bytes(r.into_body(), 4096)).unwrap();
            (status, serde_json::from_slice(&body).unwrap())
        };
        let (s, a) = e(r#"{"mac":"02:00:00:00:00:01"}"#);
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(a.field.as_deref(), Some("ip"));
        let (_, a) = e(r#"{"mac":"02:00:00:00:00:01","ip":"10.0.0.5","colour":"red"}"#);
        assert_eq!(a.field.as_deref(), Some("colour"));
        let (_, a) =
            e(r#"{"mac":"m","ip":"10.0.0.5","options":[{"code":"x","type":"u8","value":"1"}]}"#);
        assert_eq!(a.field.as_deref(), Some("options[0].code"));
        let (_, a) = e(r#"{"mac":1,"ip":"10.0.0.5"}"#);
        assert_eq!(a.field.as_deref(), Some("mac"));
        let (s, a) = e("not json");
        assert_eq!(
            (s, a.field.as_deref()),
            (StatusCode::BAD_REQUEST, Some("body"))
        );
    }

    #[test]
    fn query_errors_name_the_parameter() {
        let r = decode_query::<ReservationQuery>(Some("limit=ten".into())).unwrap_err();
        assert_eq!(r.field.as_deref(), Some("limit"));
        assert_eq!(r.into_response().status(), StatusCode::BAD_REQUEST);
        let q: ReservationQuery = decode_query(Some("limit=5&source=api".into())).unwrap();
        assert_eq!(q.limit, Some(5));
        assert_eq!(q.source.as_deref(), Some("api"));
    }

    fn lease(last: u8, state: crate::leases::LeaseState) -> Lease {
        Lease {
            ip: Ipv4Addr::new(10, 0, 0, last),
            client_id: vec![1, 2, 0, 0, 0, 0, last],
            mac: [2, 0, 0, 0, 0, last],
            state,
            expires: 100,
            updated: 50,
            hostname: None,
        }
    }

    #[test]
    fn lease_pages_follow_the_cursor_and_filters() {
        use crate::leases::LeaseState::*;
        let all: Vec<Lease> = (1..=5)
            .map(|i| lease(i, if i % 2 == 0 { Offered } else { Bound }))
            .collect();
        let q = |s: &str| -> LeaseQuery { decode_query(Some(s.into())).unwrap() };
        let p = lease_page(&all, &q("limit=2")).unwrap();
        assert_eq!(p.total, 5);
        assert_eq!(
            p.items.iter().map(|l| l.ip.as_str()).collect::<Vec<_>>(),
            ["10.0.0.1", "10.0.0.2"]
        );
        let p = lease_page(&all, &q(&format!("limit=2&after={}", p.next.unwrap()))).unwrap();
        assert_eq!(p.items[0].ip, "10.0.0.3");
        let p = lease_page(&all, &q("after=10.0.0.4")).unwrap();
        assert_eq!(p.items.len(), 1);
        assert!(p.next.is_none());
        let p = lease_page(&all, &q("state=bound")).unwrap();
        assert_eq!(p.total, 3);
        let p = lease_page(&all, &q("mac=02:00:00:00:00:04")).unwrap();
        assert_eq!(p.items[0].state, "offered");
        let e = lease_page(&all, &q("state=gone")).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("state"));
        let e = lease_page(&all, &q("limit=0")).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("limit"));
    }
}
