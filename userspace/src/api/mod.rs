//! The control-plane REST API under `/api/v1/`: subnets, reservations,
//! leases, addresses' history, the cluster, machines and stats, with the OpenAPI document generated from
//! the handlers' annotations at `/openapi.json`.
//!
//! - `types`: the JSON shapes, in one module for every client.
//! - `registry`: the reservations and the checks a change passes (pure).
//! - `live`: applies a change to the store, the XDP maps and the userspace
//!   server while the daemon runs.
//! - `auth`: who may read and who may change.
//! - `handlers`: the HTTP handlers; `client`: the CLI's side.
//!
//! Config-file reservations are the `config` source and read-only here;
//! the API's are the `api` source, kept in the store. At start the
//! file wins a clash (see `live::load`).

pub mod auth;
pub mod client;
pub mod cmd;
pub mod handlers;
pub mod live;
pub mod registry;
pub mod types;

use std::sync::Arc;

use axum::{
    extract::{FromRef, FromRequestParts},
    http::{request::Parts, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, MethodRouter},
    Json, Router,
};
use tokio::sync::watch;
use utoipa::OpenApi;

use crate::http;

/// What every handler may read.
#[derive(Clone)]
pub struct AppState {
    /// The reservations and leases: None in boot-only mode, which gives no
    /// addresses (its routes are the same; those answer 404, saying why).
    pub live: Option<Arc<live::Live>>,
    pub(crate) http: http::Api,
    pub(crate) dashboard: Arc<crate::dashboard::Hub>,
    /// The lease store, for addresses' history; None in boot-only mode.
    pub(crate) history: Option<Arc<dyn crate::store::LeaseStore>>,
    /// This node's view of its cluster; None without `[cluster]`.
    pub(crate) cluster: Option<watch::Receiver<crate::cluster::heartbeat::Status>>,
}

impl FromRef<AppState> for Arc<crate::dashboard::Hub> {
    fn from_ref(s: &AppState) -> Self {
        s.dashboard.clone()
    }
}

impl AppState {
    /// `live`: None in boot-only mode.
    pub fn new(
        live: Option<Arc<live::Live>>,
        snapshot: http::SnapshotFn,
        timeline: Arc<crate::timeline::Timeline>,
        dashboard: Arc<crate::dashboard::Hub>,
    ) -> AppState {
        AppState {
            live,
            http: http::Api::new(snapshot, timeline),
            dashboard,
            history: None,
            cluster: None,
        }
    }

    /// Answers addresses' history from `store`.
    pub fn with_history(mut self, store: Arc<dyn crate::store::LeaseStore>) -> AppState {
        self.history = Some(store);
        self
    }

    /// Answers `/api/v1/cluster` from the heartbeat's status.
    pub fn with_cluster(
        mut self,
        status: Option<watch::Receiver<crate::cluster::heartbeat::Status>>,
    ) -> AppState {
        self.cluster = status;
        self
    }
}

/// 404 with the API's error shape.
fn not_found(error: String) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(types::ApiError { error, field: None }),
    )
        .into_response()
}

/// The lease store, for the history handler; boot-only mode has none.
pub struct History(pub Arc<dyn crate::store::LeaseStore>);

impl FromRequestParts<AppState> for History {
    type Rejection = Response;

    async fn from_request_parts(_: &mut Parts, s: &AppState) -> Result<Self, Response> {
        s.history.clone().map(History).ok_or_else(|| {
            not_found(
                "server.mode = \"boot-only\": this daemon gives no addresses, so it keeps no address history"
                    .into(),
            )
        })
    }
}

/// This node's cluster status; 404 when it is in no cluster.
pub struct Cluster(pub watch::Receiver<crate::cluster::heartbeat::Status>);

impl FromRequestParts<AppState> for Cluster {
    type Rejection = Response;

    async fn from_request_parts(_: &mut Parts, s: &AppState) -> Result<Self, Response> {
        s.cluster.clone().map(Cluster).ok_or_else(|| {
            not_found(
                "not in a cluster: this daemon's configuration has no [cluster] section".into(),
            )
        })
    }
}

/// The daemon's reservations and leases, for the handlers that need them;
/// refused with a 404 that names the mode in boot-only mode.
pub struct Dhcp(pub Arc<live::Live>);

impl FromRequestParts<AppState> for Dhcp {
    type Rejection = Response;

    async fn from_request_parts(_: &mut Parts, s: &AppState) -> Result<Self, Response> {
        s.live.clone().map(Dhcp).ok_or_else(|| {
            not_found("server.mode = \"boot-only\": this daemon gives no addresses, so it has no subnets, reservations or leases (the DHCP server beside it has them)".into())
        })
    }
}

impl FromRef<AppState> for http::Api {
    fn from_ref(s: &AppState) -> Self {
        s.http.clone()
    }
}

/// The generated OpenAPI document: every path comes from a handler's
/// `#[utoipa::path]`, every schema from a `ToSchema` type.
#[derive(OpenApi)]
#[openapi(
    info(title = "stormboot", description = "Control-plane API of the stormboot DHCP and network-boot server"),
    paths(
        http::healthz,
        http::metrics,
        http::stats,
        http::machines,
        http::machine,
        openapi_json,
        crate::dashboard::index,
        crate::dashboard::script,
        crate::dashboard::style,
        crate::dashboard::stream,
        handlers::list_subnets,
        handlers::get_subnet,
        handlers::list_reservations,
        handlers::get_reservation,
        handlers::create_reservation,
        handlers::replace_reservation,
        handlers::delete_reservation,
        handlers::bulk_reservations,
        handlers::list_leases,
        handlers::get_lease,
        handlers::delete_lease,
        handlers::address_history,
        handlers::cluster,
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "reservations", description = "Known machines, answered by the XDP program"),
        (name = "leases", description = "Addresses the server has given"),
        (name = "subnets", description = "The configured networks"),
        (name = "cluster", description = "The nodes sharing this node's database"),
        (name = "machines", description = "Boot timelines"),
        (name = "daemon", description = "Health, counters and this document"),
        (name = "dashboard", description = "The live storm page and its event stream"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[utoipa::path(get, path = "/openapi.json", tag = "daemon",
    responses((status = 200, description = "This document (OpenAPI 3.1)", body = Object)))]
pub(crate) async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// A route of the daemon's router: method and path as axum matches them.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
}

/// The router and the list of its routes, built together so the list
/// cannot miss a route.
struct Table {
    router: Router<AppState>,
    routes: Vec<Route>,
}

impl Table {
    fn new() -> Table {
        Table {
            router: Router::new(),
            routes: Vec::new(),
        }
    }

    fn add(
        mut self,
        path: &'static str,
        methods: &[&'static str],
        handler: MethodRouter<AppState>,
    ) -> Table {
        self.router = self.router.route(path, handler);
        self.routes
            .extend(methods.iter().map(|&method| Route { method, path }));
        self
    }
}

fn table() -> Table {
    use crate::dashboard as d;
    use axum::routing::{delete, post, put};
    use handlers as h;
    Table::new()
        .add("/", &["get"], get(d::index))
        .add("/dashboard.js", &["get"], get(d::script))
        .add("/dashboard.css", &["get"], get(d::style))
        .add("/api/v1/dashboard/stream", &["get"], get(d::stream))
        .add("/healthz", &["get"], get(http::healthz))
        .add("/metrics", &["get"], get(http::metrics))
        .add("/openapi.json", &["get"], get(openapi_json))
        .add("/api/v1/stats", &["get"], get(http::stats))
        .add("/api/v1/machines", &["get"], get(http::machines))
        .add("/api/v1/machines/{mac}", &["get"], get(http::machine))
        .add("/api/v1/subnets", &["get"], get(h::list_subnets))
        .add("/api/v1/subnets/{network}", &["get"], get(h::get_subnet))
        .add(
            "/api/v1/reservations",
            &["get", "post"],
            get(h::list_reservations).post(h::create_reservation),
        )
        .add(
            "/api/v1/reservations/bulk",
            &["post"],
            post(h::bulk_reservations),
        )
        .add(
            "/api/v1/reservations/{mac}",
            &["get", "put", "delete"],
            get(h::get_reservation)
                .merge(put(h::replace_reservation))
                .merge(delete(h::delete_reservation)),
        )
        .add("/api/v1/leases", &["get"], get(h::list_leases))
        .add(
            "/api/v1/leases/{ip}",
            &["get", "delete"],
            get(h::get_lease).merge(delete(h::delete_lease)),
        )
        .add(
            "/api/v1/addresses/{ip}/history",
            &["get"],
            get(h::address_history),
        )
        .add("/api/v1/cluster", &["get"], get(h::cluster))
}

/// Every route the daemon's router serves.
pub fn routes() -> Vec<Route> {
    table().routes
}

/// The daemon's whole HTTP service: the API, `/metrics`, `/healthz` and
/// `/openapi.json`, behind the token check. One table and one rule for
/// every mode: boot-only mode serves the same routes (with `live` None).
pub fn router(state: AppState, policy: auth::Policy) -> Router {
    let limit = crate::http::API_BODY_LIMIT;
    table()
        .router
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(policy),
            auth::check,
        ))
        // A body larger than a bulk import of ~100k reservations is refused
        // (413) before it is read; the JSON extractor may then take it all.
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(limit))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The document is generated from annotations, the router from the
    /// table: they are written separately, so this catches a route added
    /// without its description (or a description with a typo'd path).
    #[test]
    fn the_document_describes_every_route_and_nothing_else() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        let mut documented: Vec<(String, String)> = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .unwrap()
                    .keys()
                    .filter(|k| ["get", "put", "post", "delete", "patch"].contains(&k.as_str()))
                    .map(move |m| (m.clone(), path.clone()))
            })
            .collect();
        documented.sort();
        let mut routed: Vec<(String, String)> = routes()
            .into_iter()
            .map(|r| (r.method.to_string(), r.path.to_string()))
            .collect();
        routed.sort();
        assert_eq!(documented, routed);
    }
}
