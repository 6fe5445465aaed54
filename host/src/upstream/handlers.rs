//! The upstream actor's message handlers: each hands its message to the actor's own method.

use actix::prelude::*;

use super::*;

impl Actor for Upstream {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if let Some(config) = &self.config {
            tracing::info!(endpoint = %config.endpoint, client_id = config.client_id, spooled = self.spooled(), "connecting upstream");
            self.connect(ctx);
        }
    }
}

impl Handler<FromLink> for Upstream {
    type Result = ();

    fn handle(&mut self, msg: FromLink, ctx: &mut Self::Context) {
        self.on_link(msg, ctx);
    }
}

impl Handler<PublishUpstream> for Upstream {
    type Result = Result<(), UpstreamError>;

    fn handle(&mut self, msg: PublishUpstream, _ctx: &mut Self::Context) -> Self::Result {
        self.publish(msg)
    }
}

impl Handler<RequestUpstream> for Upstream {
    type Result = Result<(), UpstreamError>;

    /// Sends now if the connection is up; never spooled (see [`RequestUpstream`]).
    fn handle(&mut self, msg: RequestUpstream, _ctx: &mut Self::Context) -> Self::Result {
        topic::validate_topic(&msg.topic)
            .map_err(|source| UpstreamError::BadTopic { topic: msg.topic.clone(), source })?;
        if topic::has_wildcard(&msg.topic) {
            return Err(UpstreamError::Wildcard(msg.topic));
        }
        let Some(link) = self.link.as_ref().filter(|_| self.state == LinkState::Connected) else {
            return Err(if self.config.is_some() { UpstreamError::NotConnected } else { UpstreamError::NotConfigured });
        };
        link.publish(&msg.topic, msg.payload.to_vec(), false, None)?;
        self.unsent.push_back(None);
        Ok(())
    }
}

impl Handler<SubscribeUpstream> for Upstream {
    type Result = Result<(), UpstreamError>;

    fn handle(&mut self, msg: SubscribeUpstream, _ctx: &mut Self::Context) -> Self::Result {
        self.subscribe(msg)
    }
}

impl Handler<UnsubscribeUpstream> for Upstream {
    type Result = bool;

    fn handle(&mut self, msg: UnsubscribeUpstream, _ctx: &mut Self::Context) -> bool {
        self.unsubscribe(msg)
    }
}

impl Handler<StopUpstream> for Upstream {
    type Result = ();

    fn handle(&mut self, _msg: StopUpstream, _ctx: &mut Self::Context) {
        self.generation += 1;
        self.link = None;
        self.config = None;
    }
}

impl Handler<GetUpstreamStatus> for Upstream {
    type Result = MessageResult<GetUpstreamStatus>;

    fn handle(&mut self, _msg: GetUpstreamStatus, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.status())
    }
}
