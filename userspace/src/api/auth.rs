//! Who may use the API: changes need the bearer token (`api.token` or
//! STORMBOOT_API_TOKEN); reads are open unless `api.read_token` is set.
//! `/healthz` and `/openapi.json` are always open, so a supervisor and a
//! client generator need no secret; so are the dashboard's page and assets,
//! which hold no data (the page asks for the token when its stream needs it).

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::{header, Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
    Json,
};

use super::types::ApiError;

/// The token and when it is needed.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    /// None: nothing can be changed through the API.
    pub token: Option<String>,
    /// Reads need the token too.
    pub read_token: bool,
}

/// Paths anyone may read.
const OPEN: [&str; 5] = [
    "/healthz",
    "/openapi.json",
    "/",
    "/dashboard.js",
    "/dashboard.css",
];

impl Policy {
    /// Ok, or the status and message of the refusal.
    pub fn decide(
        &self,
        method: &Method,
        path: &str,
        authorization: Option<&str>,
    ) -> Result<(), (StatusCode, String)> {
        let read = method == Method::GET || method == Method::HEAD;
        if read && (OPEN.contains(&path) || !self.read_token) {
            return Ok(());
        }
        let Some(token) = &self.token else {
            return Err((
                StatusCode::FORBIDDEN,
                "changes are disabled: set api.token (or STORMBOOT_API_TOKEN) in the daemon's configuration".into(),
            ));
        };
        let given = authorization
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim);
        match given {
            None => Err((
                StatusCode::UNAUTHORIZED,
                "authorization: a bearer token is required".into(),
            )),
            Some(g) if equal(g.as_bytes(), token.as_bytes()) => Ok(()),
            Some(_) => Err((
                StatusCode::UNAUTHORIZED,
                "authorization: the bearer token is wrong".into(),
            )),
        }
    }
}

/// Compares in time independent of where the inputs differ, so the
/// token cannot be guessed byte by byte from response times.
fn equal(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The middleware.
pub async fn check(State(policy): State<Arc<Policy>>, req: Request, next: Next) -> Response {
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match policy.decide(req.method(), req.uri().path(), auth) {
        Ok(()) => next.run(req).await,
        Err((status, error)) => {
            let mut r = (
                status,
                Json(ApiError {
                    error,
                    field: Some("authorization".into()),
                }),
            )
                .into_response();
            if status == StatusCode::UNAUTHORIZED {
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Bearer"),
                );
            }
            r
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_need_the_token_reads_only_when_configured() {
        let p = Policy {
            token: Some("s3cret".into()),
            read_token: false,
        };
        let post = Method::POST;
        let get = Method::GET;
        let path = "/api/v1/reservations";
        assert!(p.decide(&get, path, None).is_ok());
        assert_eq!(
            p.decide(&post, path, None).unwrap_err().0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            p.decide(&post, path, Some("Bearer s3cre")).unwrap_err().0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            p.decide(&Method::DELETE, path, Some("Basic s3cret"))
                .unwrap_err()
                .0,
            StatusCode::UNAUTHORIZED
        );
        assert!(p.decide(&post, path, Some("Bearer s3cret")).is_ok());

        let p = Policy {
            read_token: true,
            ..p
        };
        assert_eq!(
            p.decide(&get, path, None).unwrap_err().0,
            StatusCode::UNAUTHORIZED
        );
        assert!(p.decide(&get, path, Some("Bearer s3cret")).is_ok());
        assert!(p.decide(&get, "/healthz", None).is_ok());
        assert!(p.decide(&get, "/openapi.json", None).is_ok());
        // The page is open, its data is not.
        assert!(p.decide(&get, "/", None).is_ok());
        assert_eq!(
            p.decide(&get, "/api/v1/dashboard/stream", None)
                .unwrap_err()
                .0,
            StatusCode::UNAUTHORIZED
        );
        assert!(p.decide(&post, "/healthz", None).is_err());

        let none = Policy::default();
        assert!(none.decide(&get, path, None).is_ok());
        assert_eq!(
            none.decide(&post, path, Some("Bearer x")).unwrap_err().0,
            StatusCode::FORBIDDEN
        );
    }
}
