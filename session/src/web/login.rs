//! The console's password, its one-time set-up token, login sessions and the limits on
//! guessing.
//!
//! - The password is stored as an argon2id hash in `console-password` in the data directory
//!   (mode 0600). Until there is one, `console-setup-token` holds a random token; the set-up
//!   link carries it, and the page behind the link sets the password and removes the token.
//! - A login makes a session: a random id in a `Secure`, `HttpOnly`, `SameSite=Strict` cookie,
//!   and a CSRF token the pages send with every change. Sessions live in memory; a host restart
//!   or a new password ends them.
//! - Wrong passwords are counted per address and for the whole host; past the limits, logins
//!   are refused for the rest of the minute.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

use crate::state;

/// The password hash's file in the data directory.
pub const PASSWORD_FILE: &str = "console-password";
/// The set-up token's file in the data directory, there while no password is set.
pub const SETUP_FILE: &str = "console-setup-token";
/// The session cookie's name.
pub const COOKIE: &str = "punktfunk_console";
/// How long a login lasts without being used.
pub const SESSION_IDLE: Duration = Duration::from_secs(12 * 3600);
/// Wrong passwords one address may try per [`FAILURE_WINDOW`].
pub const FAILURES_PER_ADDRESS: usize = 5;
/// Wrong passwords all addresses together may try per [`FAILURE_WINDOW`].
pub const FAILURES_PER_HOST: usize = 30;
/// The window of the limits above.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// The shortest password accepted.
pub const MIN_PASSWORD: usize = 8;
/// The longest password accepted.
pub const MAX_PASSWORD: usize = 256;

/// A logged-in browser.
#[derive(Debug, Clone)]
pub struct LoginSession {
    /// What each change must carry (`X-CSRF-Token`, or a `csrf` form field).
    pub csrf: String,
    last_used: Instant,
    /// The password hash it logged in with: a new password ends the session.
    password: String,
}

/// Why a login was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum LoginError {
    /// No password is set yet: the set-up link sets one.
    NoPassword,
    /// The password is wrong.
    Wrong,
    /// Too many wrong passwords; try again after this long.
    TooMany(Duration),
}

/// The console's logins.
pub struct Logins {
    data_dir: PathBuf,
    sessions: Mutex<HashMap<String, LoginSession>>,
    failures: Mutex<Failures>,
}

#[derive(Default)]
struct Failures {
    by_address: HashMap<IpAddr, VecDeque<Instant>>,
    all: VecDeque<Instant>,
}

impl Logins {
    /// The logins of the host with this data directory.
    pub fn new(data_dir: &Path) -> Self {
        Self {
            data_dir: data_dir.to_path_buf(),
            sessions: Mutex::new(HashMap::new()),
            failures: Mutex::new(Failures::default()),
        }
    }

    /// The stored password hash, if a password is set.
    pub fn password_hash(&self) -> Option<String> {
        password_hash(&self.data_dir)
    }

    /// Checks `password` from `address`, counting failures; a session's id on success.
    pub fn login(
        &self,
        address: IpAddr,
        password: &str,
        now: Instant,
    ) -> Result<String, LoginError> {
        let hash = self.password_hash().ok_or(LoginError::NoPassword)?;
        if let Some(wait) = self.locked_out(address, now) {
            return Err(LoginError::TooMany(wait));
        }
        if !verify(&hash, password) {
            let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
            f.by_address.entry(address).or_default().push_back(now);
            f.all.push_back(now);
            return Err(LoginError::Wrong);
        }
        Ok(self.start_session(hash, now))
    }

    /// How long `address` must wait before its next try, if it must.
    fn locked_out(&self, address: IpAddr, now: Instant) -> Option<Duration> {
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let expire = |q: &mut VecDeque<Instant>| {
            while q
                .front()
                .is_some_and(|t| now.saturating_duration_since(*t) >= FAILURE_WINDOW)
            {
                q.pop_front();
            }
        };
        expire(&mut f.all);
        f.by_address.retain(|_, q| {
            expire(q);
            !q.is_empty()
        });
        let wait = |q: &VecDeque<Instant>, limit: usize| {
            (q.len() >= limit).then(|| {
                let oldest = q[q.len() - limit];
                FAILURE_WINDOW.saturating_sub(now.saturating_duration_since(oldest))
            })
        };
        let mine = f
            .by_address
            .get(&address)
            .and_then(|q| wait(q, FAILURES_PER_ADDRESS));
        mine.or_else(|| wait(&f.all, FAILURES_PER_HOST))
    }

    /// A new session for a browser that proved the password `hash` stands for.
    pub fn start_session(&self, hash: String, now: Instant) -> String {
        let id = random_token();
        let session = LoginSession {
            csrf: random_token(),
            last_used: now,
            password: hash,
        };
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.retain(|_, s| now.saturating_duration_since(s.last_used) < SESSION_IDLE);
        sessions.insert(id.clone(), session);
        id
    }

    /// The session with this id, if it is still good (not idle too long, the password not
    /// changed since); marks it used.
    pub fn session(&self, id: &str, now: Instant) -> Option<LoginSession> {
        let current = self.password_hash()?;
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let s = sessions.get_mut(id)?;
        if now.saturating_duration_since(s.last_used) >= SESSION_IDLE || s.password != current {
            sessions.remove(id);
            return None;
        }
        s.last_used = now;
        Some(s.clone())
    }

    /// Ends a session.
    pub fn logout(&self, id: &str) {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    /// The set-up token, while no password is set (see [`setup_token`]).
    pub fn setup_token(&self) -> anyhow::Result<Option<String>> {
        setup_token(&self.data_dir)
    }

    /// Sets the first password with the set-up token: the token must match, and no password
    /// be set. Returns a session for the browser that set it.
    pub fn set_up(&self, token: &str, password: &str, now: Instant) -> Result<String, String> {
        let expected = match self.setup_token() {
            Ok(Some(t)) => t,
            Ok(None) => return Err("the password is already set; log in instead".into()),
            Err(e) => return Err(format!("{e:#}")),
        };
        if !same_secret(token, &expected) {
            return Err(
                "this set-up link is not valid; run `punktfunk console-link` for the current one"
                    .into(),
            );
        }
        let hash = set_password(&self.data_dir, password).map_err(|e| format!("{e:#}"))?;
        Ok(self.start_session(hash, now))
    }
}

/// The stored password hash in `data_dir`, if a password is set.
pub fn password_hash(data_dir: &Path) -> Option<String> {
    std::fs::read_to_string(data_dir.join(PASSWORD_FILE))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// The one-time set-up token: `None` when a password is set; else the one in `data_dir`,
/// created when there is none.
pub fn setup_token(data_dir: &Path) -> anyhow::Result<Option<String>> {
    if password_hash(data_dir).is_some() {
        return Ok(None);
    }
    let path = data_dir.join(SETUP_FILE);
    match std::fs::read_to_string(&path) {
        Ok(t) if !t.trim().is_empty() => return Ok(Some(t.trim().to_string())),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
    let token = random_token();
    state::write_atomic(&path, format!("{token}\n").as_bytes(), 0o600)?;
    Ok(Some(token))
}

/// Why `password` cannot be the console's password, if it cannot.
pub fn password_problem(password: &str) -> Option<String> {
    let n = password.chars().count();
    if n < MIN_PASSWORD {
        Some(format!(
            "the password is too short: at least {MIN_PASSWORD} characters"
        ))
    } else if n > MAX_PASSWORD {
        Some(format!(
            "the password is too long: at most {MAX_PASSWORD} characters"
        ))
    } else if password.chars().any(char::is_control) {
        Some("the password contains a control character".into())
    } else {
        None
    }
}

/// Stores `password` as the console's password (argon2id) and removes the set-up token;
/// returns the new hash. Every session logged in with the old one ends.
pub fn set_password(data_dir: &Path, password: &str) -> anyhow::Result<String> {
    if let Some(problem) = password_problem(password) {
        anyhow::bail!(problem);
    }
    let mut salt = [0u8; 16];
    openssl::rand::rand_bytes(&mut salt)?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow::anyhow!("{e}"))?;
    let hash = Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))?
        .to_string();
    state::write_atomic(
        &data_dir.join(PASSWORD_FILE),
        format!("{hash}\n").as_bytes(),
        0o600,
    )?;
    match std::fs::remove_file(data_dir.join(SETUP_FILE)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).context("cannot remove the set-up token"),
    }
    Ok(hash)
}

fn verify(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// Whether `given` is `expected`, compared in constant time (the length is not secret: every
/// token has a fixed one). Never true for an empty `expected`.
pub fn same_secret(given: &str, expected: &str) -> bool {
    !expected.is_empty()
        && given.len() == expected.len()
        && openssl::memcmp::eq(given.as_bytes(), expected.as_bytes())
}

/// 32 random bytes, hex.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    if openssl::rand::rand_bytes(&mut bytes).is_err() {
        // Without randomness no session could be trusted; the process cannot go on safely.
        panic!("the system's random number generator failed");
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));

    #[test]
    fn set_up_once_then_log_in_and_out() {
        let dir = tempfile::tempdir().unwrap();
        let logins = Logins::new(dir.path());
        let now = Instant::now();
        assert_eq!(
            logins.login(ME, "whatever1", now),
            Err(LoginError::NoPassword)
        );
        let token = logins
            .setup_token()
            .unwrap()
            .expect("a token without a password");
        assert_eq!(logins.setup_token().unwrap(), Some(token.clone()), "stable");
        assert!(logins.set_up("0000", "correct horse", now).is_err());
        assert!(logins.set_up(&token, "short", now).is_err());
        assert!(
            logins.password_hash().is_none(),
            "nothing stored after refusals"
        );
        let first = logins.set_up(&token, "correct horse", now).unwrap();
        assert!(logins.session(&first, now).is_some());
        assert!(logins.setup_token().unwrap().is_none());
        assert!(!dir.path().join(SETUP_FILE).exists());
        assert!(
            logins.set_up(&token, "another one", now).is_err(),
            "the token is used up"
        );
        let hash = std::fs::read_to_string(dir.path().join(PASSWORD_FILE)).unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert_eq!(logins.login(ME, "wrong horse", now), Err(LoginError::Wrong));
        let id = logins.login(ME, "correct horse", now).unwrap();
        assert!(logins.session(&id, now).is_some());
        logins.logout(&id);
        assert!(logins.session(&id, now).is_none());
        assert!(logins.session("not-a-session", now).is_none());
    }

    #[test]
    fn a_new_password_and_idleness_end_sessions() {
        let dir = tempfile::tempdir().unwrap();
        let logins = Logins::new(dir.path());
        let now = Instant::now();
        set_password(dir.path(), "first password").unwrap();
        let a = logins.login(ME, "first password", now).unwrap();
        let b = logins.login(ME, "first password", now).unwrap();
        assert!(
            logins.session(&b, now + SESSION_IDLE).is_none(),
            "idle too long"
        );
        set_password(dir.path(), "second password").unwrap();
        assert!(logins.session(&a, now).is_none(), "the password changed");
        assert!(logins.login(ME, "second password", now).is_ok());
    }

    #[test]
    fn wrong_passwords_lock_out_the_address_for_the_rest_of_the_minute() {
        let dir = tempfile::tempdir().unwrap();
        let logins = Logins::new(dir.path());
        set_password(dir.path(), "the password").unwrap();
        let t0 = Instant::now();
        for i in 0..FAILURES_PER_ADDRESS {
            let now = t0 + Duration::from_secs(i as u64);
            assert_eq!(logins.login(ME, "guess", now), Err(LoginError::Wrong));
        }
        let now = t0 + Duration::from_secs(10);
        match logins.login(ME, "the password", now) {
            Err(LoginError::TooMany(wait)) => assert_eq!(wait, Duration::from_secs(50)),
            other => panic!("{other:?}"),
        }
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(
            logins.login(other, "the password", now).is_ok(),
            "others still can"
        );
        assert!(logins
            .login(ME, "the password", t0 + FAILURE_WINDOW)
            .is_ok());
    }

    #[test]
    fn many_addresses_together_hit_the_host_limit() {
        let dir = tempfile::tempdir().unwrap();
        let logins = Logins::new(dir.path());
        set_password(dir.path(), "the password").unwrap();
        let now = Instant::now();
        for i in 0..FAILURES_PER_HOST {
            let a = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, (i / 200) as u8, i as u8));
            assert_eq!(logins.login(a, "guess", now), Err(LoginError::Wrong));
        }
        assert!(matches!(
            logins.login(ME, "the password", now),
            Err(LoginError::TooMany(_))
        ));
    }

    #[test]
    fn secrets_are_compared_whole() {
        assert!(same_secret("abc", "abc"));
        for (given, expected) in [
            ("ab", "abc"),
            ("abcd", "abc"),
            ("abd", "abc"),
            ("", ""),
            ("x", ""),
        ] {
            assert!(!same_secret(given, expected), "{given:?} {expected:?}");
        }
    }

    #[test]
    fn passwords_are_checked() {
        assert!(password_problem("1234567").is_some());
        assert!(password_problem("12345678").is_none());
        assert!(password_problem(&"x".repeat(257)).is_some());
        assert!(password_problem("new\nline pass").is_some());
        assert!(password_problem("ünïcödé pässwörd").is_none());
    }
}
