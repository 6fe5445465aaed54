//! Console logins: `turf console` asks the host, over its owner-only socket, for a one-time
//! token; the loopback HTTP listener turns that token into a session cookie. Whoever may use the
//! socket may use the console; nobody else gets in.
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

/// Secrets and when each expires.
#[derive(Default)]
struct Secrets(HashMap<String, Instant>);

impl Secrets {
    /// Adds `secret` valid until `expires`, dropping expired ones and, past `max`, the one that
    /// expires first.
    fn add(&mut self, secret: String, expires: Instant, now: Instant, max: usize) {
        self.0.retain(|_, until| *until > now);
        while self.0.len() >= max {
            let Some(first) = self.0.iter().min_by_key(|(_, until)| **until).map(|(s, _)| s.clone()) else { break };
            self.0.remove(&first);
        }
        self.0.insert(secret, expires);
    }

    fn valid(&self, secret: &str, now: Instant) -> bool {
        self.0.get(secret).is_some_and(|until| *until > now)
    }
}

/// The console's tokens and sessions.
#[derive(Default)]
pub struct ConsoleLogins {
    tokens: Mutex<Secrets>,
    sessions: Mutex<Secrets>,
}

impl ConsoleLogins {
    /// A new one-time token.
    pub fn issue_token(&self, now: Instant) -> String {
        let token = secret();
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.add(token.clone(), now + TOKEN_TTL, now, MAX_TOKENS);
        }
        token
    }

    /// Redeems `token` (once) for a new session; `None` if it is unknown, used or expired.
    pub fn redeem(&self, token: &str, now: Instant) -> Option<String> {
        let valid = self.tokens.lock().ok()?.0.remove(token).is_some_and(|until| until > now);
        if !valid {
            return None;
        }
        let session = secret();
        self.sessions.lock().ok()?.add(session.clone(), now + SESSION_TTL, now, MAX_SESSIONS);
        Some(session)
    }

    /// Whether `session` is a live session.
    pub fn valid(&self, session: &str, now: Instant) -> bool {
        self.sessions.lock().is_ok_and(|sessions| sessions.valid(session, now))
    }

    /// Ends `session` (logout); false if it was not live.
    pub fn end(&self, session: &str) -> bool {
        self.sessions.lock().is_ok_and(|mut sessions| sessions.0.remove(session).is_some())
    }
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
        let session = logins.redeem(&token, start).expect("a fresh token");
        assert!(logins.redeem(&token, start).is_none(), "a token works once");
        assert!(logins.valid(&session, start + SESSION_TTL - Duration::from_secs(1)));
        assert!(!logins.valid(&session, start + SESSION_TTL), "sessions expire");
        assert!(logins.end(&session));
        assert!(!logins.valid(&session, start), "gone after logout");
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
                logins.redeem(&logins.issue_token(at), at).unwrap()
            })
            .collect();
        assert!(!logins.valid(&sessions[0], start));
        assert!(logins.valid(&sessions[MAX_SESSIONS], start));
    }
}
