//! The management API's routes, over [`model`]'s types. The loopback management port serves
//! them behind the bearer token ([`require_token`]); the console serves the same router behind
//! its login, so each action has one implementation.
//!
//! - `POST /api/pair` `{"pin":"1234"}`: hand the PIN to the pending pairing (404 when none).
//! - `GET /api/clients`: the paired clients.
//! - `DELETE /api/clients/{id}`: unpair one.
//! - `PATCH /api/clients/{id}` `{"name":"Living room"}`: rename one.
//! - `GET /api/status`: host name, version, ports, running sessions, renderer and encoders.
//! - `GET /api/sessions`: the running sessions.
//! - `DELETE /api/sessions/{id}`: end one.
//! - `POST /api/sessions/{id}/launch` `{"app":"Name"}`: put another app on top of the base app
//!   in a running session, without touching its stream.
//! - `GET /api/sessions/{id}/stats`: the last five minutes of its stream, a sample a second.
//! - `GET /api/pairings`: the Moonlight clients that wait for their PIN, oldest first.
//! - `GET /api/openapi.yaml`: the OpenAPI document of these routes (`docs/management-api.yaml`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use tracing::info;

use super::model::{
    Client, ErrorReply, LaunchReply, LaunchRequest, PairReply, PairRequest, PendingPairing,
    RenameReply, RenameRequest, Session, SessionStats, Status, StopReply, UnpairReply,
    VideoEncoders,
};
use crate::host::Host;

/// The OpenAPI document of the management API, served at `GET /api/openapi.yaml`.
pub const OPENAPI: &str = include_str!("../../../docs/management-api.yaml");

/// Largest request body the API reads; more gets 413.
pub const MAX_BODY: usize = crate::http::MAX_BODY;

/// A refused request: its status and `{"error": "..."}`.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

impl ApiError {
    fn new(status: StatusCode, error: impl Into<String>) -> Self {
        Self(status, error.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(ErrorReply { error: self.1 })).into_response()
    }
}

type ApiResult<T> = Result<Json<T>, ApiError>;

/// The reply to a path that is no route.
pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such route")
}

/// The API's routes over `host`, without a gate or a fallback: the caller adds its own.
pub fn router(host: Arc<Host>) -> Router {
    Router::new()
        .route("/api/pair", post(pair))
        .route("/api/clients", get(clients))
        .route("/api/clients/{id}", patch(rename).delete(unpair))
        .route("/api/status", get(status))
        .route("/api/sessions", get(sessions))
        .route("/api/sessions/{id}", delete(stop_session))
        .route("/api/sessions/{id}/launch", post(launch))
        .route("/api/sessions/{id}/stats", get(session_stats))
        .route("/api/pairings", get(pairings))
        .route("/api/openapi.yaml", get(openapi))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(host)
}

/// Lets a request through only with `Authorization: Bearer <token>`. It runs before any route
/// is looked at, so that every path, known or not, answers 401 to a request without it.
pub async fn require_token(State(token): State<Arc<str>>, req: Request, next: Next) -> Response {
    if token_matches(req.headers().get(header::AUTHORIZATION), &token) {
        next.run(req).await
    } else {
        info!(path = %req.uri().path(), "management request without a valid token");
        ApiError::new(StatusCode::UNAUTHORIZED, "missing or wrong token").into_response()
    }
}

fn token_matches(given: Option<&header::HeaderValue>, token: &str) -> bool {
    let given = given
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or("");
    // Compared in constant time: the lengths are public (the token's is fixed), the bytes not.
    !token.is_empty()
        && given.len() == token.len()
        && openssl::memcmp::eq(given.as_bytes(), token.as_bytes())
}

/// Parses a JSON body into `T`; `shape` shows the expected body in the error.
fn body<T: DeserializeOwned>(bytes: &[u8], shape: &str) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, format!("body must be {shape}")))
}

fn internal(err: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, err.to_string())
}

/// Checks a PIN's form: exactly four digits.
pub fn check_pin(pin: &str) -> Result<(), ApiError> {
    if pin.len() == 4 && pin.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "a PIN is exactly four digits",
        ))
    }
}

/// Checks a client name: 1 to 64 characters, none of them a control character.
pub fn check_client_name(name: &str) -> Result<(), ApiError> {
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "a name is 1 to 64 characters without control characters",
        ))
    } else {
        Ok(())
    }
}

async fn pair(State(host): State<Arc<Host>>, bytes: Bytes) -> ApiResult<PairReply> {
    let req: PairRequest = body(&bytes, r#"{"pin": "NNNN"}"#)?;
    check_pin(&req.pin)?;
    match host.submit_pin(&req.pin) {
        Some(client) => Ok(Json(PairReply {
            delivered: true,
            client,
        })),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no pairing is pending",
        )),
    }
}

async fn clients(State(host): State<Arc<Host>>) -> Json<Vec<Client>> {
    Json(host.clients())
}

async fn rename(
    State(host): State<Arc<Host>>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult<RenameReply> {
    let req: RenameRequest = body(&bytes, r#"{"name": "NAME"}"#)?;
    check_client_name(&req.name)?;
    match host.rename_client(&id, &req.name) {
        Ok(true) => Ok(Json(RenameReply { id, name: req.name })),
        Ok(false) => Err(no_client(&id)),
        Err(e) => Err(internal(format_args!("{e:#}"))),
    }
}

fn no_client(id: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("no client with id {id}"))
}

async fn unpair(State(host): State<Arc<Host>>, Path(id): Path<String>) -> ApiResult<UnpairReply> {
    match host.unpair(&id) {
        Ok(true) => Ok(Json(UnpairReply { removed: id })),
        Ok(false) => Err(no_client(&id)),
        Err(e) => Err(internal(format_args!("{e:#}"))),
    }
}

async fn status(State(host): State<Arc<Host>>) -> Json<Status> {
    let mut status = host.status();
    // The encoder probes are cached after the first run, which can take a second.
    let hw = host.config.video.hardware();
    status.video_encoders = tokio::task::spawn_blocking(move || video_encoders(&hw))
        .await
        .ok();
    Json(status)
}

/// What a stream started now would encode each codec with.
fn video_encoders(hw: &streamer::encode::HardwareOptions) -> VideoEncoders {
    use streamer::encode::backend::backend_for;
    use streamer::encode::Codec;
    let name = |c| backend_for(c, hw).map(|b| b.name().to_string());
    VideoEncoders {
        setting: hw.preference.name().to_string(),
        h264: name(Codec::H264),
        hevc: name(Codec::Hevc),
        av1: name(Codec::Av1),
    }
}

async fn sessions(State(host): State<Arc<Host>>) -> Json<Vec<Session>> {
    Json(host.sessions())
}

/// The running session with the id in the path.
fn session_id(host: &Host, id: &str) -> Result<u64, ApiError> {
    id.parse::<u64>()
        .ok()
        .filter(|n| host.has_session(*n))
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no session with id {id}")))
}

async fn stop_session(
    State(host): State<Arc<Host>>,
    Path(id): Path<String>,
) -> ApiResult<StopReply> {
    let n = session_id(&host, &id)?;
    tokio::task::spawn_blocking(move || host.stop_session(n, true))
        .await
        .map_err(internal)?;
    Ok(Json(StopReply { stopped: n }))
}

async fn launch(
    State(host): State<Arc<Host>>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult<LaunchReply> {
    let req: LaunchRequest = body(&bytes, r#"{"app": "NAME"}"#)?;
    let n = session_id(&host, &id)?;
    let Some(app) = host.apps.iter().find(|a| a.name == req.app).cloned() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no app named {:?}", req.app),
        ));
    };
    if !host.has_base_app() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "apps are launched into a session only on a host with a base app",
        ));
    }
    match tokio::task::spawn_blocking(move || host.launch_in_session(n, &app)).await {
        Ok(Ok(())) => Ok(Json(LaunchReply {
            launched: req.app,
            session: n,
        })),
        Ok(Err(e)) => Err(internal(format_args!("{e:#}"))),
        Err(e) => Err(internal(e)),
    }
}

async fn session_stats(
    State(host): State<Arc<Host>>,
    Path(id): Path<String>,
) -> ApiResult<SessionStats> {
    let n = session_id(&host, &id)?;
    Ok(Json(host.session_stats(n)))
}

async fn pairings(State(host): State<Arc<Host>>) -> Json<Vec<PendingPairing>> {
    Json(host.pending_pairings())
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/yaml")], OPENAPI)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every route [`router`] serves, as (method, path) with `{id}` for a path segment.
    const ROUTES: &[(&str, &str)] = &[
        ("POST", "/api/pair"),
        ("GET", "/api/clients"),
        ("DELETE", "/api/clients/{id}"),
        ("PATCH", "/api/clients/{id}"),
        ("GET", "/api/status"),
        ("GET", "/api/sessions"),
        ("DELETE", "/api/sessions/{id}"),
        ("POST", "/api/sessions/{id}/launch"),
        ("GET", "/api/sessions/{id}/stats"),
        ("GET", "/api/pairings"),
        ("GET", "/api/openapi.yaml"),
    ];

    const TOKEN: &str = "0123456789abcdef0123456789abcdef0123456789abcdef";

    fn passes(auth: Option<&str>, token: &str) -> bool {
        let value = auth.map(|a| header::HeaderValue::from_str(a).unwrap());
        token_matches(value.as_ref(), token)
    }

    #[test]
    fn a_missing_or_wrong_token_is_refused() {
        let wrong = [
            None,
            Some(String::new()),
            Some("Bearer".to_string()),
            Some("Bearer ".to_string()),
            Some(format!("Basic {TOKEN}")),
            Some(format!("bearer{TOKEN}")),
            Some(format!("Bearer {}", &TOKEN[1..])),
            Some(format!("Bearer {TOKEN}0")),
            Some(format!("Bearer {}", TOKEN.to_uppercase())),
            Some(format!("Bearer {}x", &TOKEN[..TOKEN.len() - 1])),
        ];
        for auth in &wrong {
            assert!(!passes(auth.as_deref(), TOKEN), "{auth:?}");
        }
    }

    #[test]
    fn the_right_token_passes_with_or_without_padding() {
        assert!(passes(Some(&format!("Bearer {TOKEN}")), TOKEN));
        assert!(passes(Some(&format!("Bearer  {TOKEN} ")), TOKEN));
    }

    #[test]
    fn an_empty_token_file_never_authorizes() {
        assert!(!passes(Some("Bearer "), ""));
    }

    #[test]
    fn the_openapi_document_lists_every_route_and_only_those() {
        let mut documented = Vec::new();
        let mut path = None;
        for line in OPENAPI.lines() {
            if let Some(p) = line.strip_prefix("  /").and_then(|l| l.strip_suffix(':')) {
                path = Some(format!("/{p}"));
            } else if !line.starts_with("  ") {
                path = None;
            } else if let (Some(p), Some(m)) = (
                &path,
                line.strip_prefix("    ").and_then(|l| l.strip_suffix(':')),
            ) {
                if ["get", "post", "put", "delete", "patch"].contains(&m) {
                    documented.push((m.to_uppercase(), p.clone()));
                }
            }
        }
        let mut routes: Vec<(String, String)> = ROUTES
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        documented.sort();
        routes.sort();
        assert_eq!(documented, routes);
        assert!(
            OPENAPI.contains("scheme: bearer"),
            "the document declares the bearer token"
        );
    }

    #[test]
    fn pins_and_names_are_checked() {
        assert!(check_pin("0123").is_ok());
        for bad in ["", "123", "12345", "12a4", "١٢٣٤"] {
            assert!(check_pin(bad).is_err(), "{bad:?}");
        }
        assert!(check_client_name("Living room").is_ok());
        assert!(check_client_name(&"x".repeat(64)).is_ok());
        for bad in [
            String::new(),
            "x".repeat(65),
            "a\nb".into(),
            "\u{7f}".into(),
        ] {
            assert!(check_client_name(&bad).is_err(), "{bad:?}");
        }
    }
}
