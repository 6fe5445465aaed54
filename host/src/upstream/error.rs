//! What the upstream service answers when it refuses a publish or a subscription.

use thiserror::Error;

use super::spool::SpoolError;
use crate::topic::TopicError;

/// Why the upstream service refused a request.
#[derive(Debug, Error)]
pub enum UpstreamError {
    /// No upstream broker is configured.
    #[error("no upstream broker is configured (turf run --upstream mqtts://HOST:PORT, or config.toml)")]
    NotConfigured,
    /// The topic or filter is not valid MQTT.
    #[error("upstream topic {topic:?}: {source}")]
    BadTopic {
        /// The topic or filter as given.
        topic: String,
        /// What is wrong with it.
        #[source]
        source: TopicError,
    },
    /// A publish topic holds a wildcard.
    #[error("{0}: an upstream topic must not contain wildcards")]
    Wildcard(String),
    /// The spool refused or failed to keep the message.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// The MQTT client refused to queue a request to the upstream broker.
    #[error("the upstream MQTT client cannot {action}: {reason}")]
    Link {
        /// What was asked of it.
        action: &'static str,
        /// What the client said.
        reason: String,
    },
    /// A request that is never spooled found the connection down.
    #[error("the upstream broker is not connected")]
    NotConnected,
}

/// A failure to start the upstream service.
#[derive(Debug, Error)]
pub enum UpstreamStartError {
    /// The spool could not be opened.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// The TLS files are unusable.
    #[error("upstream TLS: {0}")]
    Tls(String),
}
