//! `turf:host/pubsub`: the local pubsub bus, checked against `aws.greengrass.ipc.pubsub`, and
//! the upstream broker, checked against `aws.greengrass.ipc.mqttproxy`.

use crate::components::access::{
    MQTT_PROXY_SERVICE, PUBLISH_TO_IOT_CORE, PUBLISH_TO_TOPIC, PUBSUB_SERVICE, SUBSCRIBE_TO_IOT_CORE,
    SUBSCRIBE_TO_TOPIC,
};
use crate::components::bindings::turf::host::pubsub;
use crate::components::bindings::turf::host::types::Error;
use crate::components::instance::HostState;
use crate::flow::Credit;
use crate::pubsub::{Publish, PubsubError, Subscribe, Unsubscribe};
use crate::topic;
use crate::upstream::{PublishUpstream, SubscribeUpstream, UnsubscribeUpstream, UpstreamError};

fn upstream_error(error: impl std::fmt::Display) -> Error {
    Error::ServiceError(format!("upstream service unavailable: {error}"))
}

/// The upstream service's refusal as the guest sees it: its own mistake, or the service's.
fn upstream_refusal(error: UpstreamError) -> Error {
    match error {
        UpstreamError::BadTopic { .. } | UpstreamError::Wildcard(_) => Error::InvalidArguments(error.to_string()),
        UpstreamError::NotConfigured
        | UpstreamError::Spool(_)
        | UpstreamError::Link { .. }
        | UpstreamError::NotConnected => Error::ServiceError(error.to_string()),
    }
}

fn service_error(error: impl std::fmt::Display) -> Error {
    Error::ServiceError(format!("pubsub bus unavailable: {error}"))
}

fn bus_error(error: PubsubError) -> Error {
    Error::InvalidArguments(error.to_string())
}

impl pubsub::Host for HostState {
    async fn publish(&mut self, topic: String, payload: Vec<u8>) -> Result<(), Error> {
        if topic::has_wildcard(&topic) {
            return Err(Error::InvalidArguments("Publish topic must not contain a wildcard.".to_owned()));
        }
        topic::validate_topic(&topic).map_err(|e| Error::InvalidArguments(e.to_string()))?;
        self.authorize(PUBSUB_SERVICE, PUBLISH_TO_TOPIC, &topic)?;
        self.pace_publish().await;
        let publish = Publish {
            publisher: self.name.clone(),
            topic,
            payload: payload.into(),
            credit: Credit::none(),
            span: tracing::Span::current(),
        };
        self.services.bus.publish.send(publish).await.map_err(service_error)?.map_err(bus_error)
    }

    async fn subscribe(&mut self, filter: String) -> Result<(), Error> {
        topic::validate_filter(&filter).map_err(|e| Error::InvalidArguments(e.to_string()))?;
        self.authorize(PUBSUB_SERVICE, SUBSCRIBE_TO_TOPIC, &filter)?;
        let subscribe = Subscribe {
            subscriber: self.name.clone(),
            filter: filter.clone(),
            mode: None,
            recipient: self.inbox.clone(),
        };
        // Noted before the bus is asked: if the call is cut off while it waits, whoever drops
        // this instance still knows to unsubscribe it.
        let new = self.subscriptions.insert(filter.clone());
        let subscribed =
            self.services.bus.subscribe.send(subscribe).await.map_err(service_error).and_then(|r| r.map_err(bus_error));
        if subscribed.is_err() && new {
            self.subscriptions.remove(&filter);
        }
        subscribed
    }

    async fn unsubscribe(&mut self, filter: String) -> Result<(), Error> {
        let unsubscribe = Unsubscribe { subscriber: self.name.clone(), filter: filter.clone() };
        self.subscriptions.remove(&filter);
        match self.services.bus.unsubscribe.send(unsubscribe).await.map_err(service_error)? {
            true => Ok(()),
            false => Err(Error::ResourceNotFound(format!("not subscribed to {filter:?}"))),
        }
    }

    async fn publish_to_iotcore(&mut self, topic: String, payload: Vec<u8>) -> Result<(), Error> {
        if topic::has_wildcard(&topic) {
            return Err(Error::InvalidArguments("Publish topic must not contain a wildcard.".to_owned()));
        }
        topic::validate_topic(&topic).map_err(|e| Error::InvalidArguments(e.to_string()))?;
        self.authorize(MQTT_PROXY_SERVICE, PUBLISH_TO_IOT_CORE, &topic)?;
        self.pace_publish().await;
        let publish =
            PublishUpstream { topic, payload: payload.into(), retain: false, properties: None, credit: Credit::none() };
        self.services.upstream.publish.send(publish).await.map_err(upstream_error)?.map_err(upstream_refusal)
    }

    async fn subscribe_to_iotcore(&mut self, filter: String) -> Result<(), Error> {
        topic::validate_filter(&filter).map_err(|e| Error::InvalidArguments(e.to_string()))?;
        self.authorize(MQTT_PROXY_SERVICE, SUBSCRIBE_TO_IOT_CORE, &filter)?;
        let subscribe = SubscribeUpstream {
            subscriber: self.name.clone(),
            filter: filter.clone(),
            recipient: self.upstream_inbox.clone(),
        };
        self.services.upstream.subscribe.send(subscribe).await.map_err(upstream_error)?.map_err(upstream_refusal)?;
        self.iotcore_subscriptions.insert(filter);
        Ok(())
    }

    async fn unsubscribe_from_iotcore(&mut self, filter: String) -> Result<(), Error> {
        self.iotcore_subscriptions.remove(&filter);
        let unsubscribe = UnsubscribeUpstream { subscriber: self.name.clone(), filter: Some(filter.clone()) };
        match self.services.upstream.unsubscribe.send(unsubscribe).await.map_err(upstream_error)? {
            true => Ok(()),
            false => Err(Error::ResourceNotFound(format!("not subscribed to {filter:?} upstream"))),
        }
    }
}
