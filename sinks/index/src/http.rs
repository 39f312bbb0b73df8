//! The read-only HTTP query API over an [`Index`], mounted by `provenant serve` and `up`.
//!
//! | route | answer |
//! |---|---|
//! | `GET /v1/lineage/{entity}?direction=up\|down&depth=N` | [`crate::Lineage`]; the key percent-encoded as one path segment; direction `up` by default, depth 3 by default, at most [`MAX_LINEAGE_DEPTH`] |
//! | `GET /v1/events/{id}?source=S` | `{"events": [IndexedEvent…]}`; 404 when none |
//! | `GET /v1/ledger/{partition}/{seq}` | the [`crate::IndexedEvent`] at that ledger position (a link's target); 404 when none |
//! | `GET /v1/deployments?env=E` | `{"deployments": [Deployment…]}`: the latest per service and environment |
//! | `GET /v1/rollback?service=S&env=E` | the [`crate::Deployment`] to roll back to; 404 when there is none |
//! | `GET /v1/coverage` | [`crate::Coverage`] |
//! | `GET /v1/stats` | [`crate::Stats`] and `missing_link_rate` |
//!
//! Invariants (as `provenant-ingest`): every error is JSON `{"error": "…"}` saying what is
//! wrong with which input; a bad key, direction, depth or parameter is a 400, an unknown
//! parameter too (a typo must not silently change an answer). When a token is configured,
//! every request needs `Authorization: Bearer <token>` (compared in constant time) or gets
//! 401. An index that is unreachable or busy gives 503 with `Retry-After`. Whether to listen
//! beyond loopback without a token is the caller's check (`provenant_ingest::check_listen`).

use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use provenant_schemas::EntityKey;
use serde_json::json;

use crate::{Direction, Index, IndexError, MAX_LINEAGE_DEPTH};

/// Lineage depth when the request names none.
pub const DEFAULT_DEPTH: u32 = 3;

/// Query API settings.
#[derive(Clone, Default)]
pub struct QueryConfig {
    /// When set, every request must carry `Authorization: Bearer <token>`.
    pub token: Option<String>,
}

impl std::fmt::Debug for QueryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryConfig")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

struct Api<I> {
    index: Arc<I>,
    config: QueryConfig,
}

/// The routes above, over `index`.
pub fn router<I: Index>(index: Arc<I>, config: QueryConfig) -> Router {
    let api = Arc::new(Api { index, config });
    Router::new()
        .route("/v1/lineage/{entity}", get(lineage::<I>))
        .route("/v1/events/{id}", get(events::<I>))
        .route("/v1/ledger/{partition}/{seq}", get(ledger_position::<I>))
        .route("/v1/deployments", get(deployments::<I>))
        .route("/v1/rollback", get(rollback::<I>))
        .route("/v1/coverage", get(coverage::<I>))
        .route("/v1/stats", get(stats::<I>))
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&api),
            authorize::<I>,
        ))
        .with_state(api)
}

type Params = Vec<(String, String)>;

async fn authorize<I: Index>(
    State(api): State<Arc<Api<I>>>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(expected) = &api.config.token
        && !token_matches(request.headers(), expected)
    {
        let mut r = error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token (Authorization: Bearer <token>)",
        );
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"provenant\""),
        );
        return r;
    }
    next.run(request).await
}

async fn lineage<I: Index>(
    State(api): State<Arc<Api<I>>>,
    entity: Result<Path<String>, PathRejection>,
    params: Result<Query<Params>, QueryRejection>,
) -> Response {
    let Ok(Path(entity)) = entity else {
        return error(
            StatusCode::BAD_REQUEST,
            "the entity key must be one percent-encoded path segment",
        );
    };
    let key = match EntityKey::parse(&entity) {
        Ok(k) => k,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("bad entity key: {e}")),
    };
    let params = match params_of(params, &["direction", "depth"]) {
        Ok(p) => p,
        Err(m) => return error(StatusCode::BAD_REQUEST, &m),
    };
    let mut direction = Direction::Up;
    let mut depth = DEFAULT_DEPTH;
    for (k, v) in &params {
        match k.as_str() {
            "direction" => match Direction::parse(v) {
                Some(d) => direction = d,
                None => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "direction must be up (towards commits) or down (towards environments)",
                    );
                }
            },
            _ => match v.parse::<u32>() {
                Ok(d) if d <= MAX_LINEAGE_DEPTH => depth = d,
                _ => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        &format!("depth must be a whole number from 0 to {MAX_LINEAGE_DEPTH}"),
                    );
                }
            },
        }
    }
    match api.index.lineage(&key, direction, depth).await {
        Ok(l) => axum::Json(l).into_response(),
        Err(e) => index_error("lineage", e),
    }
}

async fn events<I: Index>(
    State(api): State<Arc<Api<I>>>,
    id: Result<Path<String>, PathRejection>,
    params: Result<Query<Params>, QueryRejection>,
) -> Response {
    let Ok(Path(id)) = id else {
        return error(
            StatusCode::BAD_REQUEST,
            "the event id must be one percent-encoded path segment",
        );
    };
    let params = match params_of(params, &["source"]) {
        Ok(p) => p,
        Err(m) => return error(StatusCode::BAD_REQUEST, &m),
    };
    let source = params.iter().find(|(k, _)| k == "source").map(|(_, v)| v);
    match api.index.event(&id, source.map(String::as_str)).await {
        Ok(list) if list.is_empty() => error(
            StatusCode::NOT_FOUND,
            &format!(
                "no event with id {id:?}{} in the index",
                source
                    .map(|s| format!(" from source {s:?}"))
                    .unwrap_or_default()
            ),
        ),
        Ok(list) => axum::Json(json!({ "events": list })).into_response(),
        Err(e) => index_error("event", e),
    }
}

async fn ledger_position<I: Index>(
    State(api): State<Arc<Api<I>>>,
    position: Result<Path<(u32, i64)>, PathRejection>,
) -> Response {
    let Ok(Path((partition, seq))) = position else {
        return error(
            StatusCode::BAD_REQUEST,
            "a ledger position is /v1/ledger/<partition>/<seq>, both whole numbers",
        );
    };
    match api.index.event_at(partition, seq).await {
        Ok(Some(e)) => axum::Json(e).into_response(),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            &format!("no event at partition {partition} seq {seq} in the index"),
        ),
        Err(e) => index_error("event_at", e),
    }
}

async fn deployments<I: Index>(
    State(api): State<Arc<Api<I>>>,
    params: Result<Query<Params>, QueryRejection>,
) -> Response {
    let params = match params_of(params, &["env"]) {
        Ok(p) => p,
        Err(m) => return error(StatusCode::BAD_REQUEST, &m),
    };
    let env = params.iter().find(|(k, _)| k == "env").map(|(_, v)| v);
    match api.index.deployments(env.map(String::as_str)).await {
        Ok(list) => axum::Json(json!({ "deployments": list })).into_response(),
        Err(e) => index_error("deployments", e),
    }
}

async fn rollback<I: Index>(
    State(api): State<Arc<Api<I>>>,
    params: Result<Query<Params>, QueryRejection>,
) -> Response {
    let params = match params_of(params, &["service", "env"]) {
        Ok(p) => p,
        Err(m) => return error(StatusCode::BAD_REQUEST, &m),
    };
    let get = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v);
    let (Some(service), Some(env)) = (get("service"), get("env")) else {
        return error(
            StatusCode::BAD_REQUEST,
            "rollback needs ?service=<service>&env=<environment>",
        );
    };
    match api.index.rollback_target(service, env).await {
        Ok(Some(d)) => axum::Json(d).into_response(),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            &format!(
                "no rollback target for {service:?} in {env:?}: no current deployment, or no earlier one with a different artifact"
            ),
        ),
        Err(e) => index_error("rollback", e),
    }
}

async fn coverage<I: Index>(
    State(api): State<Arc<Api<I>>>,
    params: Result<Query<Params>, QueryRejection>,
) -> Response {
    if let Err(m) = params_of(params, &[]) {
        return error(StatusCode::BAD_REQUEST, &m);
    }
    match api.index.coverage().await {
        Ok(c) => axum::Json(c).into_response(),
        Err(e) => index_error("coverage", e),
    }
}

async fn stats<I: Index>(
    State(api): State<Arc<Api<I>>>,
    params: Result<Query<Params>, QueryRejection>,
) -> Response {
    if let Err(m) = params_of(params, &[]) {
        return error(StatusCode::BAD_REQUEST, &m);
    }
    match api.index.stats().await {
        Ok(s) => {
            let rate = s.missing_link_rate();
            let mut body = serde_json::to_value(&s).unwrap_or_default();
            if let Some(obj) = body.as_object_mut() {
                obj.insert("missing_link_rate".into(), json!(rate));
            }
            axum::Json(body).into_response()
        }
        Err(e) => index_error("stats", e),
    }
}

/// The query parameters, refusing malformed ones, unknown names and repeats.
fn params_of(
    params: Result<Query<Params>, QueryRejection>,
    allowed: &[&str],
) -> Result<Params, String> {
    let Ok(Query(params)) = params else {
        return Err("the query string is malformed".into());
    };
    for (i, (k, _)) in params.iter().enumerate() {
        if !allowed.contains(&k.as_str()) {
            let expected = if allowed.is_empty() {
                "this route takes none".to_owned()
            } else {
                format!("expected {}", allowed.join(", "))
            };
            return Err(format!("unknown query parameter {k:?} ({expected})"));
        }
        if params.iter().take(i).any(|(p, _)| p == k) {
            return Err(format!("query parameter {k:?} is given twice"));
        }
    }
    Ok(params)
}

fn index_error(what: &str, e: IndexError) -> Response {
    match &e {
        IndexError::UnknownEntity(_) => error(StatusCode::NOT_FOUND, &e.to_string()),
        IndexError::InvalidArgument(_) => error(StatusCode::BAD_REQUEST, &e.to_string()),
        _ if e.is_retryable() => {
            tracing::warn!(query = what, error = %e, "index unavailable");
            let mut r = error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the index is unavailable; retry shortly",
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(1u32));
            r
        }
        _ => {
            tracing::error!(query = what, error = %e, "index query failed");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("the {what} query failed: {e}"),
            )
        }
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

/// Constant-time comparison of the bearer token (as `provenant-ingest` does it).
fn token_matches(headers: &HeaderMap, expected: &str) -> bool {
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    let (a, b) = (given.as_bytes(), expected.as_bytes());
    let mut diff = u8::from(a.len() != b.len());
    for (i, &x) in b.iter().enumerate() {
        diff |= x ^ a.get(i).copied().unwrap_or(0);
    }
    diff == 0
}
