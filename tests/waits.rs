//! Bounded waits: every wait in the suite ends, with a message naming what it waited for.

use std::future::Future;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};

/// Default bound on every wait in the suite.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// Polls `condition` every 20 ms until it holds or `timeout` passes.
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut condition: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if condition().await {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Awaits `future` for at most `timeout`.
pub async fn with_timeout<T>(timeout: Duration, what: &str, future: impl Future<Output = T>) -> Result<T> {
    tokio::time::timeout(timeout, future).await.map_err(|_| anyhow!("timed out after {timeout:?}: {what}"))
}
