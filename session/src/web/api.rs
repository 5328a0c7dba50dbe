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
//! - `GET /api/apps`: the app catalog; `POST /api/apps` adds an app, `PUT /api/apps/{id}` edits
//!   one, `DELETE /api/apps/{id}` removes one: each saved to the config file, comments kept,
//!   and in force at once. `GET`/`PUT /api/apps/{id}/image`: its box art (PNG or JPEG in).
//! - `GET /api/logs`, `GET /api/logs/{name}`, `GET /api/logs/{name}/events`: the host's log
//!   and the apps' logs, recent lines and live ([`super::logs`]).
//! - `GET /api/settings`: every config key with its documentation, default and value in the
//!   config file; `PUT /api/settings/{key}` `{"value": ...}` sets one, `DELETE` returns it to
//!   its default, saved as the apps are.
//! - `GET /api/openapi.yaml`: the OpenAPI document of these routes (`docs/management-api.yaml`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post, put};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use tracing::info;

use super::model::{
    AppEntry, AppSaved, Client, ErrorReply, LaunchReply, LaunchRequest, NativePin, PairReply,
    PairRequest, PendingPairing, RenameReply, RenameRequest, Session, SessionStats, Setting,
    SettingRequest, Status, StopReply, UnavailableEncoder, UnpairReply, VideoEncoders,
};
use crate::config_edit::{self, AppFields, EditError, EnvVar, PrepFields};
use crate::gamestream::GameStream;
use crate::host::{ConfigEditFailure, Host};
use crate::native::Native;
use crate::settings;

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
pub fn router(state: super::ApiState) -> Router {
    // Box art may be larger than any other body.
    let images = super::with_body_limit(
        Router::new().route("/api/apps/{id}/image", get(app_image).put(upload_image)),
        crate::boxart::MAX_BYTES,
    );
    let rest = Router::new()
        .route("/api/pair", post(pair))
        .route("/api/clients", get(clients))
        .route("/api/clients/{id}", patch(rename).delete(unpair))
        .route("/api/status", get(status))
        .route("/api/sessions", get(sessions))
        .route("/api/sessions/{id}", delete(stop_session))
        .route("/api/sessions/{id}/launch", post(launch))
        .route("/api/sessions/{id}/stats", get(session_stats))
        .route("/api/pairings", get(pairings))
        .route("/api/native/pair", post(native_pair))
        .route("/api/logs", get(super::logs::list))
        .route("/api/logs/{name}", get(super::logs::recent))
        .route("/api/logs/{name}/events", get(super::logs::events))
        .route("/api/settings", get(settings))
        .route(
            "/api/settings/{key}",
            put(change_setting).delete(reset_setting),
        )
        .route("/api/apps", get(apps).post(add_app))
        .route("/api/apps/{id}", put(edit_app).delete(delete_app))
        .route("/api/openapi.yaml", get(openapi));
    super::with_body_limit(rest, MAX_BODY)
        .merge(images)
        .with_state(state)
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
    super::login::same_secret(given, token)
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

async fn pair(State(gs): State<Arc<GameStream>>, bytes: Bytes) -> ApiResult<PairReply> {
    let req: PairRequest = body(&bytes, r#"{"pin": "NNNN"}"#)?;
    check_pin(&req.pin)?;
    let from = match req.address.as_deref() {
        None => None,
        Some(a) => Some(a.parse::<std::net::IpAddr>().map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("address {a:?} is not an IP address"),
            )
        })?),
    };
    match gs.submit_pin(&req.pin, from) {
        Some(client) => Ok(Json(PairReply {
            delivered: true,
            client,
        })),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            match from {
                Some(a) => format!("no pairing from {a} is pending"),
                None => "no pairing is pending".into(),
            },
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
    let hw = crate::config::hardware(&host.config().video);
    status.video_encoders = tokio::task::spawn_blocking(move || video_encoders(&hw))
        .await
        .ok();
    Json(status)
}

/// What a stream started now would encode each codec with, and the GPU encoders passed over
/// on the way, with why (one entry per encoder and reason, naming its codecs).
fn video_encoders(hw: &streamer::encode::HardwareOptions) -> VideoEncoders {
    use streamer::encode::backend::select_for;
    use streamer::encode::Codec;
    let mut unavailable: Vec<UnavailableEncoder> = Vec::new();
    let [h264, hevc, av1] = [
        (Codec::H264, "h264"),
        (Codec::Hevc, "hevc"),
        (Codec::Av1, "av1"),
    ]
    .map(|(codec, codec_name)| {
        // One selection a codec (the probes are cached): its backend and what it passed over.
        let selection = select_for(codec, hw);
        let name = selection.encodes(codec).map(|b| b.name().to_string());
        for skipped in selection.skipped {
            let encoder = skipped.backend.name().to_string();
            let codec = codec_name.to_string();
            match unavailable
                .iter_mut()
                .find(|u| u.encoder == encoder && u.reason == skipped.reason)
            {
                Some(known) => known.codecs.push(codec),
                None => unavailable.push(UnavailableEncoder {
                    encoder,
                    codecs: vec![codec],
                    reason: skipped.reason,
                }),
            }
        }
        name
    });
    VideoEncoders {
        setting: hw.preference.name().to_string(),
        h264,
        hevc,
        av1,
        unavailable,
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
    let Some(app) = host.apps().iter().find(|a| a.name == req.app).cloned() else {
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

async fn native_pair(State(native): State<Arc<Native>>) -> Json<NativePin> {
    Json(NativePin {
        pin: native.arm_pairing(),
        expires_s: crate::native::PIN_LIFETIME.as_secs(),
    })
}

async fn pairings(State(gs): State<Arc<GameStream>>) -> Json<Vec<PendingPairing>> {
    Json(gs.pending_pairings())
}

async fn apps(State(host): State<Arc<Host>>) -> Json<Vec<AppEntry>> {
    Json(
        host.apps()
            .iter()
            .map(|a| AppEntry {
                id: a.id,
                name: a.name.clone(),
                cmd: a.cmd.clone(),
                env: EnvVar::list(&a.env),
                working_dir: a
                    .working_dir
                    .as_ref()
                    .map(|d| d.display().to_string())
                    .unwrap_or_default(),
                prep: a
                    .prep
                    .iter()
                    .map(|p| PrepFields {
                        run: p.run.clone(),
                        undo: p.undo.clone(),
                    })
                    .collect(),
                has_image: a.image.is_some(),
                fixed: a.base || a.builtin,
            })
            .collect(),
    )
}

/// The name of the catalog app with the id in the path, refusing the base app and the
/// built-in test pattern.
fn editable_app(host: &Host, id: &str) -> Result<String, ApiError> {
    let apps = host.apps();
    let app = id
        .parse::<i32>()
        .ok()
        .and_then(|n| apps.iter().find(|a| a.id == n))
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no app with id {id}")))?;
    if app.base {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "the base app is set by [base_app] or `punktfunk session`, not here",
        ));
    }
    if app.builtin {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "the built-in test pattern is not in the config file; add an app of your own instead",
        ));
    }
    Ok(app.name.clone())
}

/// Checks what the config loader cannot word as well: a name, a command.
fn check_app(app: &AppFields) -> Result<(), ApiError> {
    let bad = |why: &str| Err(ApiError::new(StatusCode::BAD_REQUEST, why));
    if app.name.trim().is_empty() || app.name.chars().count() > 100 {
        return bad("an app's name is 1 to 100 characters");
    }
    if app.name.chars().any(char::is_control) {
        return bad("an app's name has no control characters");
    }
    if app.cmd.first().is_none_or(|c| c.trim().is_empty()) {
        return bad("an app needs a command: the program first, then its arguments");
    }
    if let Some(var) = app.env.iter().find(|v| !EnvVar::valid_name(&v.name)) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "{:?} cannot name an environment variable: letters, digits and _, not starting with a digit",
                var.name
            ),
        ));
    }
    if app.env.iter().any(|v| v.value.contains('\0')) {
        return bad("an environment variable's value has no NUL character");
    }
    Ok(())
}

fn edit_failed(failure: ConfigEditFailure) -> ApiError {
    match failure {
        ConfigEditFailure::Edit(e @ EditError::NoSuchApp(_)) => {
            ApiError::new(StatusCode::NOT_FOUND, e.to_string())
        }
        // What clashes with the host's state (a name taken, a directory that is not there, a
        // file not editable) is a conflict; the request's own shape was checked before.
        ConfigEditFailure::Edit(e) => ApiError::new(StatusCode::CONFLICT, e.to_string()),
        ConfigEditFailure::Invalid(e) => ApiError::new(StatusCode::CONFLICT, e),
        ConfigEditFailure::Unsaved(e) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

/// Runs a config edit ([`Host::edit_config`]) off the async threads.
async fn edit_config(
    host: &Arc<Host>,
    edit: impl FnOnce(&str) -> Result<String, EditError> + Send + 'static,
) -> Result<(), ApiError> {
    let h = host.clone();
    tokio::task::spawn_blocking(move || h.edit_config(edit))
        .await
        .map_err(internal)?
        .map_err(edit_failed)
}

/// Saves an app's edit; the app's id after it.
async fn save(
    host: Arc<Host>,
    name: String,
    edit: impl FnOnce(&str) -> Result<String, EditError> + Send + 'static,
) -> ApiResult<AppSaved> {
    edit_config(&host, edit).await?;
    let id = host.apps().iter().find(|a| a.name == name).map(|a| a.id);
    Ok(Json(AppSaved { id, name }))
}

const APP_SHAPE: &str = r#"{"name": "...", "cmd": ["program", "arg"], "env": [{"name": "VAR", "value": "..."}], "working_dir": "", "prep": [{"do": [...], "undo": [...]}]}"#;

async fn add_app(State(host): State<Arc<Host>>, bytes: Bytes) -> ApiResult<AppSaved> {
    let app: AppFields = body(&bytes, APP_SHAPE)?;
    check_app(&app)?;
    let name = app.name.clone();
    save(host, name, move |text| {
        config_edit::put_app(text, None, &app)
    })
    .await
}

async fn edit_app(
    State(host): State<Arc<Host>>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult<AppSaved> {
    let app: AppFields = body(&bytes, APP_SHAPE)?;
    check_app(&app)?;
    let old = editable_app(&host, &id)?;
    let name = app.name.clone();
    save(host, name, move |text| {
        config_edit::put_app(text, Some(&old), &app)
    })
    .await
}

async fn delete_app(State(host): State<Arc<Host>>, Path(id): Path<String>) -> ApiResult<AppSaved> {
    let name = editable_app(&host, &id)?;
    let n = name.clone();
    let Json(mut saved) = save(host, name, move |text| config_edit::remove_app(text, &n)).await?;
    saved.id = None;
    Ok(Json(saved))
}

async fn app_image(State(host): State<Arc<Host>>, Path(id): Path<String>) -> Response {
    let known = id
        .parse::<i32>()
        .ok()
        .filter(|n| host.apps().iter().any(|a| a.id == *n));
    match known {
        Some(n) => ([(header::CONTENT_TYPE, "image/png")], host.box_art(Some(n))).into_response(),
        None => {
            ApiError::new(StatusCode::NOT_FOUND, format!("no app with id {id}")).into_response()
        }
    }
}

async fn upload_image(
    State(host): State<Arc<Host>>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult<AppSaved> {
    let name = editable_app(&host, &id)?;
    let png = crate::boxart::to_png(&bytes)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    let file = host
        .data_dir
        .join("boxart")
        .join(format!("{}.png", crate::apps::slug(&name)));
    crate::state::write_atomic(&file, &png, 0o644).map_err(|e| internal(format_args!("{e:#}")))?;
    let path = file.display().to_string();
    let n = name.clone();
    save(host, name, move |text| {
        config_edit::set_app_image(text, &n, &path)
    })
    .await
}

fn toml_to_json(value: &toml::Value) -> serde_json::Value {
    match value {
        toml::Value::Boolean(b) => (*b).into(),
        toml::Value::Integer(i) => (*i).into(),
        toml::Value::String(s) => s.as_str().into(),
        other => other.to_string().into(),
    }
}

fn edit_value_to_json(value: &toml_edit::Value) -> serde_json::Value {
    match value {
        toml_edit::Value::Boolean(b) => (*b.value()).into(),
        toml_edit::Value::Integer(i) => (*i.value()).into(),
        toml_edit::Value::String(s) => s.value().as_str().into(),
        other => other.to_string().trim().into(),
    }
}

/// The settings with the values the config file has now.
fn current_settings(host: &Host) -> Vec<Setting> {
    let text = host
        .config_file
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default();
    settings::documented()
        .iter()
        .map(|d| Setting {
            key: d.key(),
            doc: d.doc.clone(),
            default: d.default.as_ref().map(toml_to_json),
            value: config_edit::get_key(&text, &d.table, &d.name)
                .as_ref()
                .map(edit_value_to_json),
            kind: d.kind,
            choices: d.choices().iter().map(|c| c.to_string()).collect(),
            applies: if d.live() { "next-session" } else { "restart" }.into(),
        })
        .collect()
}

async fn settings(State(host): State<Arc<Host>>) -> Json<Vec<Setting>> {
    Json(current_settings(&host))
}

fn documented(key: &str) -> Result<&'static settings::Documented, ApiError> {
    settings::find(key)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no setting named {key:?}")))
}

/// The TOML value for `value`, checked against what the key takes.
fn setting_value(
    d: &settings::Documented,
    value: &serde_json::Value,
) -> Result<toml_edit::Value, ApiError> {
    let key = d.key();
    let wrong = |what: &str| {
        Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("{key} takes {what}"),
        ))
    };
    match (d.kind, value) {
        (settings::Kind::Boolean, serde_json::Value::Bool(b)) => Ok((*b).into()),
        (settings::Kind::Boolean, _) => wrong("true or false"),
        (settings::Kind::Integer, serde_json::Value::Number(n)) => match n.as_i64() {
            Some(i) => Ok(i.into()),
            None => wrong("a whole number"),
        },
        (settings::Kind::Integer, _) => wrong("a whole number"),
        (settings::Kind::String, serde_json::Value::String(s)) => {
            let choices = d.choices();
            if !choices.is_empty() && !choices.contains(&s.as_str()) {
                return wrong(&format!("one of {}", choices.join(", ")));
            }
            if s.chars().any(char::is_control) {
                return wrong("text without control characters");
            }
            Ok(s.as_str().into())
        }
        (settings::Kind::String, _) => wrong("text"),
    }
}

/// Saves a setting's edit, then replies with the setting as the file has it now.
async fn save_setting(
    host: Arc<Host>,
    d: &'static settings::Documented,
    edit: impl FnOnce(&str) -> Result<String, EditError> + Send + 'static,
) -> ApiResult<Setting> {
    edit_config(&host, edit).await?;
    let key = d.key();
    current_settings(&host)
        .into_iter()
        .find(|s| s.key == key)
        .map(Json)
        .ok_or_else(|| internal("the setting vanished"))
}

async fn change_setting(
    State(host): State<Arc<Host>>,
    Path(key): Path<String>,
    bytes: Bytes,
) -> ApiResult<Setting> {
    let d = documented(&key)?;
    let req: SettingRequest = body(&bytes, r#"{"value": ...}"#)?;
    let value = setting_value(d, &req.value)?;
    save_setting(host, d, move |text| {
        config_edit::set_key(text, &d.table, &d.name, value)
    })
    .await
}

async fn reset_setting(
    State(host): State<Arc<Host>>,
    Path(key): Path<String>,
) -> ApiResult<Setting> {
    let d = documented(&key)?;
    save_setting(host, d, move |text| {
        config_edit::remove_key(text, &d.table, &d.name)
    })
    .await
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
        ("POST", "/api/native/pair"),
        ("GET", "/api/clients"),
        ("DELETE", "/api/clients/{id}"),
        ("PATCH", "/api/clients/{id}"),
        ("GET", "/api/status"),
        ("GET", "/api/sessions"),
        ("DELETE", "/api/sessions/{id}"),
        ("POST", "/api/sessions/{id}/launch"),
        ("GET", "/api/sessions/{id}/stats"),
        ("GET", "/api/pairings"),
        ("GET", "/api/logs"),
        ("GET", "/api/logs/{name}"),
        ("GET", "/api/logs/{name}/events"),
        ("GET", "/api/settings"),
        ("PUT", "/api/settings/{key}"),
        ("DELETE", "/api/settings/{key}"),
        ("GET", "/api/apps"),
        ("POST", "/api/apps"),
        ("PUT", "/api/apps/{id}"),
        ("DELETE", "/api/apps/{id}"),
        ("GET", "/api/apps/{id}/image"),
        ("PUT", "/api/apps/{id}/image"),
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
