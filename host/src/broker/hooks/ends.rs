//! Hooks at the end of a session or of a message: forgetting a session, counting drops.

use std::sync::Arc;

use async_trait::async_trait;
use rmqtt::hook::{Handler, HookResult, Parameter, ReturnType};
use rmqtt::types::Reason;

use super::HookState;
use crate::broker::stats::{BrokerCounters, DropReason};

/// `SessionTerminated`: forget the credentials of a session that ended, and let the trimmer
/// know a burst of work may be over.
pub struct Forget(pub Arc<HookState>);

#[async_trait]
impl Handler for Forget {
    async fn hook(&self, param: &Parameter, acc: Option<HookResult>) -> ReturnType {
        if let Parameter::SessionTerminated(session, _) = param
            && let Ok(mut sessions) = self.0.sessions.lock()
        {
            let client_id: &str = &session.id.client_id;
            if sessions.get(client_id).is_some_and(|c| c.remote == session.id.remote_addr)
                && let Some(ended) = sessions.remove(client_id)
            {
                ended.span.in_scope(|| tracing::debug!("session ended"));
            }
        }
        if let Parameter::SessionTerminated(..) = param {
            self.0.trimmer.hint(crate::memory::Burst::Traffic);
        }
        (true, acc)
    }
}

/// `ClientConnected` / `ClientDisconnected`: whether an admitted session's connection is open
/// (a persistent session stays admitted after its connection closes).
pub struct Presence(pub Arc<HookState>);

#[async_trait]
impl Handler for Presence {
    async fn hook(&self, param: &Parameter, acc: Option<HookResult>) -> ReturnType {
        let (session, connected) = match param {
            Parameter::ClientConnected(session) => (session, true),
            Parameter::ClientDisconnected(session, _) => (session, false),
            _ => return (true, acc),
        };
        if let Ok(mut sessions) = self.0.sessions.lock()
            && let Some(credentials) = sessions.get_mut(&*session.id.client_id)
            && credentials.remote == session.id.remote_addr
        {
            credentials.connected = connected;
        }
        (true, acc)
    }
}

/// `MessageDropped`: count why the broker dropped a message (one copy for one recipient).
pub struct Dropped(pub Arc<BrokerCounters>);

/// The counter a drop reason of rmqtt's belongs to.
pub(super) fn drop_reason(reason: &Reason) -> DropReason {
    match reason {
        Reason::MessageQueueFull => DropReason::QueueFull,
        Reason::MessageExpiration => DropReason::Expired,
        Reason::PublishResult(_) => DropReason::Denied,
        Reason::QueueWaitTimedOut => DropReason::WaitTimedOut,
        Reason::Unsubscribed => DropReason::Unsubscribed,
        _ => DropReason::SessionEnded,
    }
}

#[async_trait]
impl Handler for Dropped {
    async fn hook(&self, param: &Parameter, acc: Option<HookResult>) -> ReturnType {
        if let Parameter::MessageDropped(_, _, _, reason) = param {
            self.0.dropped(drop_reason(reason));
        }
        (true, acc)
    }
}
