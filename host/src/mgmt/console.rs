//! Console logins: `turf console` asks the host, over its owner-only socket, for a one-time
//! token; the loopback HTTP listener turns that token into a session cookie. Whoever may use the
//! socket may use the console; nobody else gets in.
//!
//! A session is two secrets: the cookie, and a key the page keeps in its own origin's
//! `localStorage` and sends with every API request. Browsers send cookies to every port of a
//! host, so a page another local user serves on `127.0.0.1:8000` gets the cookie; it never gets
//! the key (storage is per origin, port included), so neither it nor a form it submits can use
//! the API. Only the socket issues tokens: a session cannot mint the next one.
//!
//! Both tables are bounded: at most [`MAX_TOKENS`] unredeemed tokens and [`MAX_SESSIONS`]
//! sessions (the oldest goes first), tokens expire after [`TOKEN_TTL`], sessions after
//! [`SESSION_TTL`] (Greengrass's debug password lasts 8 hours too) or at logout.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a token from `turf console` may be redeemed.
pub const TOKEN_TTL: Duration = Duration::from_secs(5 * 60);
/// How long a console session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
/// Unredeemed tokens kept at most.
pub const MAX_TOKENS: usize = 16;
/// Sessions kept at most.
pub const MAX_SESSIONS: usize = 64;
/// The session cookie's name.
pub const COOKIE: &str = "turf_console";

/// Secrets, when each expires, and what each carries (a session's key).
struct Secrets<V>(HashMap<String, (Instant, V)>);

impl<V> Default for Secrets<V> {
    fn default() -> Self {
        Self(HashMap::new())
    }
}

impl<V> Secrets<V> {
    /// Adds `secret` valid until `expires`, dropping expired ones and, past `max`, the one that
    /// expires first.
    fn add(&mut self, secret: String, value: V, expires: Instant, now: Instant, max: usize) {
        self.0.retain(|_, (until, _)| *until > now);
        while self.0.len() >= max {
            let first = self.0.iter().min_by_key(|(_, (until, _))| *until).map(|(s, _)| s.clone());
            let Some(first) = first else { break };
            self.0.remove(&first);
        }
        self.0.insert(secret, (expires, value));
    }

    fn live(&self, secret: &str, now: Instant) -> Option<&V> {
        self.0.get(secret).filter(|(until, _)| *until > now).map(|(_, value)| value)
    }
}

/// A session just opened: the cookie's value and the key the page sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The cookie.
    pub id: String,
    /// The key.
    pub key: String,
}

/// The console's tokens and sessions.
#[derive(Default)]
pub struct ConsoleLogins {
    tokens: Mutex<Secrets<()>>,
    sessions: Mutex<Secrets<String>>,
}

impl ConsoleLogins {
    /// A new one-time token.
    pub fn issue_token(&self, now: Instant) -> String {
        let token = secret();
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.add(token.clone(), (), now + TOKEN_TTL, now, MAX_TOKENS);
        }
        token
    }

    /// Redeems `token` (once) for a new session; `None` if it is unknown, used or expired.
    pub fn redeem(&self, token: &str, now: Instant) -> Option<Session> {
        let valid = self.tokens.lock().ok()?.0.remove(token).is_some_and(|(until, _)| until > now);
        if !valid {
            return None;
        }
        let session = Session { id: secret(), key: secret() };
        self.sessions.lock().ok()?.add(session.id.clone(), session.key.clone(), now + SESSION_TTL, now, MAX_SESSIONS);
        Some(session)
    }

    /// Whether `session` is a live session (what the page's own files need).
    pub fn valid(&self, session: &str, now: Instant) -> bool {
        self.sessions.lock().is_ok_and(|sessions| sessions.live(session, now).is_some())
    }

    /// Whether `session` is live and `key` is its key (what the API needs).
    pub fn authorizes(&self, session: &str, key: &str, now: Instant) -> bool {
        self.sessions.lock().is_ok_and(|sessions| sessions.live(session, now).is_some_and(|k| same(k, key)))
    }

    /// Ends `session` (logout); false if it was not live.
    pub fn end(&self, session: &str) -> bool {
        self.sessions.lock().is_ok_and(|mut sessions| sessions.0.remove(session).is_some())
    }
}

/// Compares two secrets in a time that does not depend on where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// 244 random bits, hex (two version-4 UUIDs from the OS's random source).
fn secret() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_redeemed_once_and_a_session_lasts_until_logout_or_expiry() {
        let logins = ConsoleLogins::default();
        let start = Instant::now();
        let token = logins.issue_token(start);
        assert_eq!(token.len(), 64);
        let Session { id: session, key } = logins.redeem(&token, start).expect("a fresh token");
        assert!(logins.redeem(&token, start).is_none(), "a token works once");
        assert!(logins.valid(&session, start + SESSION_TTL - Duration::from_secs(1)));
        assert!(logins.authorizes(&session, &key, start));
        assert!(!logins.authorizes(&session, &session, start), "the cookie alone is not the key");
        assert!(!logins.authorizes(&session, "", start));
        assert!(!logins.authorizes(&key, &key, start), "the key is no cookie");
        assert!(!logins.valid(&session, start + SESSION_TTL), "sessions expire");
        assert!(!logins.authorizes(&session, &key, start + SESSION_TTL));
        assert!(logins.end(&session));
        assert!(!logins.valid(&session, start), "gone after logout");
        assert!(!logins.authorizes(&session, &key, start));
        assert!(!logins.end(&session));

        let late = logins.issue_token(start);
        assert!(logins.redeem(&late, start + TOKEN_TTL).is_none(), "tokens expire");
        assert!(logins.redeem("guess", start).is_none());
    }

    #[test]
    fn the_tables_are_bounded_and_the_oldest_goes_first() {
        let logins = ConsoleLogins::default();
        let start = Instant::now();
        let tokens: Vec<String> =
            (0..MAX_TOKENS + 3).map(|i| logins.issue_token(start + Duration::from_millis(i as u64))).collect();
        assert!(logins.redeem(&tokens[0], start).is_none(), "the oldest was dropped");
        assert!(logins.redeem(&tokens[MAX_TOKENS + 2], start).is_some());
        let sessions: Vec<String> = (0..MAX_SESSIONS + 1)
            .map(|i| {
                let at = start + Duration::from_millis(i as u64);
                logins.redeem(&logins.issue_token(at), at).unwrap().id
            })
            .collect();
        assert!(!logins.valid(&sessions[0], start));
        assert!(logins.valid(&sessions[MAX_SESSIONS], start));
    }
}
