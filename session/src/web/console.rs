//! The web console: HTTPS on the LAN (`[console]`), a password login ([`super::login`]) and
//! pages in `assets/console/`, embedded in the binary. The pages act through the management
//! API's own routes ([`super::api`]), served here behind the login instead of the token.
//!
//! - `GET /`: the console (a login first).
//! - `GET /setup?token=...`, `POST /setup`: the one-time set-up link sets the password.
//! - `GET /login`, `POST /login`, `POST /logout`.
//! - `/api/...`: as on the management port, with the session cookie; every change needs the
//!   session's CSRF token in `X-CSRF-Token`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use tracing::{info, warn};

use super::api::{self, ApiError};
use super::login::{self, LoginError, Logins};
use crate::host::Host;

const INDEX: &str = include_str!("../../../assets/console/index.html");
const SCRIPT: &str = include_str!("../../../assets/console/console.js");
const STYLE: &str = include_str!("../../../assets/console/console.css");

/// What every console page and reply is sent with: no framing, no sniffing, no referrer (the
/// set-up link carries its token) but to the console itself, scripts and styles from the console itself only.
const SECURITY_HEADERS: &[(&str, &str)] = &[
    (
        "content-security-policy",
        "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; \
         connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    ),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "same-origin"),
    ("cache-control", "no-store"),
];

/// The console's state.
pub struct Console {
    host: Arc<Host>,
    logins: Logins,
}

/// The console's routes.
pub fn router(state: super::ApiState) -> Router {
    let console = Arc::new(Console {
        logins: Logins::new(&state.host.data_dir),
        host: state.host.clone(),
    });
    let api = api::router(state).route_layer(middleware::from_fn_with_state(
        console.clone(),
        require_login,
    ));
    let pages = super::with_body_limit(
        Router::new()
            .route("/", get(index))
            .route("/setup", get(setup_page).post(setup))
            .route("/login", get(login_page).post(login))
            .route("/logout", post(logout))
            .route("/console.js", get(script))
            .route("/console.css", get(style))
            .fallback(not_found),
        api::MAX_BODY,
    )
    .with_state(console);
    api.merge(pages)
        .layer(middleware::from_fn(security_headers))
}

async fn not_found(req: Request) -> Response {
    if req.uri().path().starts_with("/api/") {
        return api::not_found().await.into_response();
    }
    (
        StatusCode::NOT_FOUND,
        page(
            "Not found",
            "<p>There is no such page. <a href=\"/\">To the console</a></p>",
        ),
    )
        .into_response()
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    for (name, value) in SECURITY_HEADERS {
        resp.headers_mut()
            .insert(*name, HeaderValue::from_static(value));
    }
    resp
}

/// The value of cookie `name` in the request.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// Whether a state-changing request comes from a console page: without an `Origin` header
/// (older browsers, scripts), or with one naming the host the request was sent to.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    match (origin.to_str().ok(), host) {
        (Some(origin), Some(host)) => origin == format!("https://{host}"),
        _ => false,
    }
}

/// The answer to a browser that has just logged in (or set the password): its session cookie,
/// and the console.
fn logged_in(id: &str) -> Response {
    (
        [(header::SET_COOKIE, session_cookie(id))],
        Redirect::to("/"),
    )
        .into_response()
}

fn session_cookie(id: &str) -> String {
    format!(
        "{}={id}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={}",
        login::COOKIE,
        login::SESSION_IDLE.as_secs()
    )
}

fn cleared_cookie() -> String {
    format!(
        "{}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0",
        login::COOKIE
    )
}

/// Lets an API request through only from a logged-in browser, and a change only with the
/// session's CSRF token and from the console's own origin.
async fn require_login(State(console): State<Arc<Console>>, req: Request, next: Next) -> Response {
    let session = cookie(req.headers(), login::COOKIE)
        .and_then(|id| console.logins.session(id, Instant::now()));
    let Some(session) = session else {
        return ApiError(
            StatusCode::UNAUTHORIZED,
            "log in to the console first".into(),
        )
        .into_response();
    };
    let safe = matches!(*req.method(), Method::GET | Method::HEAD);
    if !safe {
        let token = req
            .headers()
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let token_ok = login::same_secret(token, &session.csrf);
        if !token_ok || !same_origin(req.headers()) {
            warn!(path = %req.uri().path(), "console change without its CSRF token refused");
            return ApiError(
                StatusCode::FORBIDDEN,
                "missing or wrong CSRF token; reload the page".into(),
            )
            .into_response();
        }
    }
    next.run(req).await
}

/// A whole page around `body`, for the pages the server renders (set-up, login, errors).
fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · punktfunk</title><link rel=\"stylesheet\" href=\"/console.css\">\
         </head><body class=\"narrow\"><main><h1>{title}</h1>{body}</main></body></html>\n",
        title = escape(title)
    ))
}

/// `text` for HTML text and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn message(kind: &str, text: &str) -> String {
    let role = if kind == "error" { "alert" } else { "status" };
    format!(
        "<p class=\"message {kind}\" role=\"{role}\">{}</p>",
        escape(text)
    )
}

async fn index(State(console): State<Arc<Console>>, headers: HeaderMap) -> Response {
    if console.logins.password_hash().is_none() {
        return (
            StatusCode::OK,
            page(
                "Set up the console",
                "<p>No password is set yet. Open the set-up link from the host's log, or run \
                 <code>punktfunk console-link</code> on the host to see it.</p>",
            ),
        )
            .into_response();
    }
    let had_cookie = cookie(&headers, login::COOKIE).is_some();
    let session =
        cookie(&headers, login::COOKIE).and_then(|id| console.logins.session(id, Instant::now()));
    let Some(session) = session else {
        let to = if had_cookie {
            "/login?ended=1"
        } else {
            "/login"
        };
        return Redirect::to(to).into_response();
    };
    let html = INDEX
        .replace("{{csrf}}", &session.csrf)
        .replace("{{host}}", &escape(&console.host.config().host.name));
    Html(html).into_response()
}

#[derive(Deserialize)]
struct SetupQuery {
    #[serde(default)]
    token: String,
}

fn setup_form(token: &str, note: &str) -> String {
    format!(
        "{note}<form method=\"post\" action=\"/setup\">\
         <input type=\"hidden\" name=\"token\" value=\"{token}\">\
         <label for=\"password\">New password (at least {min} characters)</label>\
         <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"new-password\" \
         minlength=\"{min}\" required autofocus>\
         <label for=\"confirm\">The same password again</label>\
         <input id=\"confirm\" name=\"confirm\" type=\"password\" autocomplete=\"new-password\" \
         minlength=\"{min}\" required>\
         <button type=\"submit\">Set the password</button></form>",
        token = escape(token),
        min = login::MIN_PASSWORD
    )
}

async fn setup_page(State(console): State<Arc<Console>>, Query(q): Query<SetupQuery>) -> Response {
    match console.logins.setup_token() {
        Ok(None) => Redirect::to("/login").into_response(),
        Ok(Some(_)) => page(
            "Set up the console",
            &setup_form(
                &q.token,
                "<p>Choose the password that opens this console.</p>",
            ),
        )
        .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            page("Set up the console", &message("error", &format!("{e:#}"))),
        )
            .into_response(),
    }
}

#[derive(Deserialize)]
struct SetupForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
}

async fn setup(
    State(console): State<Arc<Console>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<SetupForm>,
) -> Response {
    if !same_origin(&headers) {
        return forbidden_origin();
    }
    let refused = |status: StatusCode, why: &str| {
        (
            status,
            page(
                "Set up the console",
                &setup_form(&form.token, &message("error", why)),
            ),
        )
            .into_response()
    };
    if form.password != form.confirm {
        return refused(StatusCode::BAD_REQUEST, "the two passwords differ");
    }
    if let Some(problem) = login::password_problem(&form.password) {
        return refused(StatusCode::BAD_REQUEST, &problem);
    }
    let logins = console.clone();
    let token = form.token.clone();
    let password = form.password.clone();
    let result = tokio::task::spawn_blocking(move || {
        logins.logins.set_up(&token, &password, Instant::now())
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
    match result {
        Ok(id) => {
            info!(%peer, "the console's password was set with the set-up link");
            logged_in(&id)
        }
        Err(why) => {
            warn!(%peer, %why, "console set-up refused");
            refused(StatusCode::FORBIDDEN, &why)
        }
    }
}

#[derive(Deserialize)]
struct LoginQuery {
    #[serde(default)]
    ended: Option<String>,
    #[serde(default)]
    out: Option<String>,
}

fn login_form(note: &str) -> String {
    format!(
        "{note}<form method=\"post\" action=\"/login\">\
         <label for=\"password\">Password</label>\
         <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" \
         required autofocus>\
         <button type=\"submit\">Log in</button></form>\
         <p class=\"hint\">Forgot it? Run <code>punktfunk console-password</code> on the host.</p>"
    )
}

async fn login_page(State(console): State<Arc<Console>>, Query(q): Query<LoginQuery>) -> Response {
    if console.logins.password_hash().is_none() {
        return Redirect::to("/").into_response();
    }
    let note = if q.ended.is_some() {
        message("info", "Your login has ended; log in again.")
    } else if q.out.is_some() {
        message("info", "You are logged out.")
    } else {
        String::new()
    };
    page("Log in to punktfunk", &login_form(&note)).into_response()
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    password: String,
}

async fn login(
    State(console): State<Arc<Console>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if !same_origin(&headers) {
        return forbidden_origin();
    }
    let address: IpAddr = peer.ip();
    let c = console.clone();
    let result = tokio::task::spawn_blocking(move || {
        c.logins.login(address, &form.password, Instant::now())
    })
    .await
    .unwrap_or(Err(LoginError::Wrong));
    let refused = |status: StatusCode, why: &str| {
        (
            status,
            page("Log in to punktfunk", &login_form(&message("error", why))),
        )
            .into_response()
    };
    match result {
        Ok(id) => {
            info!(%peer, "console login");
            logged_in(&id)
        }
        Err(LoginError::NoPassword) => Redirect::to("/").into_response(),
        Err(LoginError::Wrong) => {
            warn!(%peer, "console login with a wrong password");
            refused(StatusCode::UNAUTHORIZED, "Wrong password.")
        }
        Err(LoginError::TooMany(wait)) => {
            warn!(%peer, "console login refused: too many wrong passwords");
            refused(
                StatusCode::TOO_MANY_REQUESTS,
                &format!(
                    "Too many wrong passwords. Try again in {} s.",
                    wait.as_secs().max(1)
                ),
            )
        }
    }
}

#[derive(Deserialize)]
struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Form(form): Form<LogoutForm>,
) -> Response {
    if let Some(id) = cookie(&headers, login::COOKIE) {
        match console.logins.session(id, Instant::now()) {
            Some(s) if login::same_secret(&form.csrf, &s.csrf) => {
                console.logins.logout(id);
            }
            Some(_) => {
                return (
                    StatusCode::FORBIDDEN,
                    page(
                        "Not logged out",
                        "<p>The request came without the page's CSRF token. \
                         <a href=\"/\">Back to the console</a></p>",
                    ),
                )
                    .into_response();
            }
            None => {}
        }
    }
    (
        [(header::SET_COOKIE, cleared_cookie())],
        Redirect::to("/login?out=1"),
    )
        .into_response()
}

fn forbidden_origin() -> Response {
    (
        StatusCode::FORBIDDEN,
        page("Refused", "<p>This form was sent from another site.</p>"),
    )
        .into_response()
}

async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
}

async fn style() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE)
}

/// The console's addresses for a browser: for a console listening on every address, each
/// address of this machine on its networks (loopback last), else the one it listens on.
pub fn urls(local: SocketAddr) -> Vec<String> {
    let port = local.port();
    let mut addresses: Vec<IpAddr> = if local.ip().is_unspecified() {
        let mut a = network_addresses();
        a.push(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
        a
    } else {
        vec![local.ip()]
    };
    addresses.dedup();
    addresses
        .into_iter()
        .map(|ip| match ip {
            IpAddr::V4(v4) => format!("https://{v4}:{port}/"),
            IpAddr::V6(v6) => format!("https://[{v6}]:{port}/"),
        })
        .collect()
}

/// The one-time set-up link at `url`, while no password is set.
pub fn setup_link(url: &str, token: &str) -> String {
    format!("{url}setup?token={token}")
}

/// Says in the log where the console is, how to set its password (while none is set) and how
/// to pair a client.
pub fn announce(data_dir: &std::path::Path, local: SocketAddr) {
    let urls = urls(local);
    let first = urls.first().cloned().unwrap_or_default();
    info!(
        "the web console is at {} (the host's own certificate: the browser asks once whether to trust it)",
        urls.join(" and ")
    );
    match login::setup_token(data_dir) {
        Ok(Some(token)) => info!(
            "set the console's password with this one-time link: {} (`punktfunk console-link` shows it again)",
            setup_link(&first, &token)
        ),
        Ok(None) => {}
        Err(e) => warn!("cannot make the console's set-up link: {e:#}"),
    }
    info!(
        "to pair a Moonlight client: add this host in Moonlight (it lists hosts on this network, or type one of the addresses above), then type the PIN it shows into the console's Pairing page, or run `punktfunk pair PIN` on this machine"
    );
}

/// The IPv4 addresses of this machine's network interfaces that are up, loopback excluded.
fn network_addresses() -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list that freeifaddrs frees below; each
    // entry's address, when not null, points at a sockaddr of the family it names.
    unsafe {
        if libc::getifaddrs(&mut list) != 0 {
            return out;
        }
        let mut entry = list;
        while !entry.is_null() {
            let e = &*entry;
            let up = e.ifa_flags & (libc::IFF_UP as u32) != 0;
            let loopback = e.ifa_flags & (libc::IFF_LOOPBACK as u32) != 0;
            if up
                && !loopback
                && !e.ifa_addr.is_null()
                && i32::from((*e.ifa_addr).sa_family) == libc::AF_INET
            {
                let sin = &*(e.ifa_addr as *const libc::sockaddr_in);
                out.push(IpAddr::V4(std::net::Ipv4Addr::from(u32::from_be(
                    sin.sin_addr.s_addr,
                ))));
            }
            entry = e.ifa_next;
        }
        libc::freeifaddrs(list);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_and_origins() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; punktfunk_console=abc; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&h, login::COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
        assert!(same_origin(&h), "no Origin header");
        h.insert(header::HOST, "192.0.2.1:47991".parse().unwrap());
        h.insert(header::ORIGIN, "https://192.0.2.1:47991".parse().unwrap());
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, "https://evil.example".parse().unwrap());
        assert!(!same_origin(&h));
        h.insert(header::ORIGIN, "http://192.0.2.1:47991".parse().unwrap());
        assert!(!same_origin(&h));
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
