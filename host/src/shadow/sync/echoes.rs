//! Sync's own writes, told apart from real changes when their echo comes back: each side's
//! `update/documents` carrying the token of a write sync made, and the local `delete/accepted`
//! of a delete sync made (which carries no token; it is marked by the shadow's name).

use std::collections::HashSet;
use std::sync::Mutex;

/// Most writes whose echo is awaited at once (far more than the jobs running).
const MAX_ECHOES: usize = 1024;

/// Client tokens of sync's own writes whose echo (that side's `update/documents`) is still to
/// come. The first event carrying one is sync's own write and is ignored; a later one carrying
/// the same token is a real change: a device that copies a delta's token into its report, as
/// the AWS samples do, must not have its report taken for sync's echo.
#[derive(Debug, Default)]
pub struct Echoes(Mutex<HashSet<String>>);

impl Echoes {
    pub(super) fn expect(&self, token: &str) {
        if let Ok(mut tokens) = self.0.lock() {
            if tokens.len() >= MAX_ECHOES {
                // Echoes that never came (lost answers): forgetting them costs at most an extra sync.
                tokens.clear();
            }
            tokens.insert(token.to_owned());
        }
    }

    /// Whether an event carrying `token` is the echo of sync's own write (then it is consumed).
    pub fn consume(&self, token: &str) -> bool {
        self.0.lock().is_ok_and(|mut tokens| tokens.remove(token))
    }

    pub(super) fn forget(&self, token: &str) {
        self.consume(token);
    }
}
