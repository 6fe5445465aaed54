//! `aws.greengrass.clientdevices.mqtt.Bridge` configuration: parsing and route matching.
//!
//! The wire format is Greengrass's verbatim: `mqttTopicMapping` maps a route name to
//! `{topic, source, target, targetTopicPrefix?}` with sources/targets `LocalMqtt`, `Pubsub`,
//! `IotCore`; the target topic is the prefix followed by the *actual* source topic. Other
//! Greengrass keys (`mqtt5RouteOptions`, `brokerUri`, `clientId`, `mqtt`) are accepted. Errors
//! name the JSON path and what was expected. Pure logic: no actors, no I/O.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde_json::Value;
use thiserror::Error;

use crate::topic;

/// Where a route reads from or writes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Endpoint {
    /// The device broker.
    LocalMqtt,
    /// The local pubsub bus.
    Pubsub,
    /// The upstream broker ("AWS IoT Core").
    IotCore,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Endpoint::LocalMqtt => "LocalMqtt",
            Endpoint::Pubsub => "Pubsub",
            Endpoint::IotCore => "IotCore",
        })
    }
}

impl Endpoint {
    fn parse(text: &str) -> Option<Self> {
        [Endpoint::LocalMqtt, Endpoint::Pubsub, Endpoint::IotCore]
            .into_iter()
            .find(|e| e.to_string().eq_ignore_ascii_case(text))
    }
}

/// One validated route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Route name (the key in `mqttTopicMapping`).
    pub name: String,
    /// Topic filter on the source.
    pub filter: String,
    /// Where messages come from.
    pub source: Endpoint,
    /// Where they go.
    pub target: Endpoint,
    /// Prepended to the source topic to make the target topic.
    pub target_topic_prefix: String,
    /// `mqtt5RouteOptions.<route>.retainAsPublished`: a device message keeps its retain flag
    /// (otherwise it is cleared, as Greengrass does).
    pub retain_as_published: bool,
}

/// The bridge's validated configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BridgeConfig {
    routes: Vec<Route>,
}

/// Why a bridge configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("aws.greengrass.clientdevices.mqtt.Bridge configuration: {path}: {problem}")]
pub struct BridgeConfigError {
    /// JSON path of the offending value.
    pub path: String,
    /// What is wrong and what was expected.
    pub problem: String,
}

fn error(path: impl Into<String>, problem: impl Into<String>) -> BridgeConfigError {
    BridgeConfigError { path: path.into(), problem: problem.into() }
}

/// The configuration keys of the Greengrass bridge (only `mqttTopicMapping` drives Turf).
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct WireConfig {
    #[serde(default)]
    mqtt_topic_mapping: Option<BTreeMap<String, Option<Value>>>,
    #[serde(default, rename = "mqtt5RouteOptions")]
    mqtt5_route_options: Option<BTreeMap<String, Value>>,
    #[serde(default, rename = "brokerUri")]
    _broker_uri: Option<Value>,
    #[serde(default, rename = "brokerServerUri")]
    _broker_server_uri: Option<Value>,
    #[serde(default, rename = "clientId")]
    _client_id: Option<Value>,
    #[serde(default, rename = "mqtt")]
    _mqtt: Option<Value>,
    #[serde(default, rename = "startupTimeoutSeconds")]
    _startup_timeout: Option<Value>,
}

/// `mqtt5RouteOptions.<route>`. `noLocal` is accepted and always in effect: the bridge never
/// receives what it publishes to devices (its publishes do not pass the broker's taps).
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct WireRouteOptions {
    #[serde(default)]
    no_local: Option<bool>,
    #[serde(default)]
    retain_as_published: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct WireRoute {
    topic: Option<String>,
    source: Option<String>,
    target: Option<String>,
    #[serde(default)]
    target_topic_prefix: Option<String>,
}

impl BridgeConfig {
    /// Validates the bridge's component configuration (the whole JSON object).
    pub fn from_json(config: &Value) -> Result<Self, BridgeConfigError> {
        if config.is_null() {
            return Ok(Self::default());
        }
        let wire: WireConfig =
            serde_json::from_value(config.clone()).map_err(|e| error("(top level)", e.to_string()))?;
        let mut routes = Vec::new();
        for (name, route) in wire.mqtt_topic_mapping.unwrap_or_default() {
            let Some(route) = route else { continue };
            routes.push(parse_route(&name, route)?);
        }
        for (name, options) in wire.mqtt5_route_options.unwrap_or_default() {
            let path = format!("mqtt5RouteOptions.{name}");
            let options: WireRouteOptions = serde_json::from_value(options)
                .map_err(|e| error(&path, format!("{e} (route options are noLocal and retainAsPublished)")))?;
            let _ = options.no_local;
            let route = routes
                .iter_mut()
                .find(|r| r.name == name)
                .ok_or_else(|| error(&path, "no route of that name in mqttTopicMapping"))?;
            route.retain_as_published = options.retain_as_published.unwrap_or(false);
        }
        Ok(Self { routes })
    }

    /// Every route, ordered by name.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Distinct topic filters the bridge must read from `source`.
    pub fn source_filters(&self, source: Endpoint) -> Vec<String> {
        let mut filters: Vec<String> =
            self.routes.iter().filter(|r| r.source == source).map(|r| r.filter.clone()).collect();
        filters.sort();
        filters.dedup();
        filters
    }

    /// The routes a message from `source` on `topic` takes, with each target topic.
    pub fn forwards<'a>(&'a self, source: Endpoint, topic: &'a str) -> impl Iterator<Item = (&'a Route, String)> + 'a {
        self.routes
            .iter()
            .filter(move |r| r.source == source && topic::matches(&r.filter, topic))
            .map(move |r| (r, format!("{}{topic}", r.target_topic_prefix)))
    }
}

fn parse_route(name: &str, value: Value) -> Result<Route, BridgeConfigError> {
    let path = format!("mqttTopicMapping.{name}");
    let wire: WireRoute = serde_json::from_value(value).map_err(|e| {
        error(&path, format!("{e} (a route has topic, source, target and optionally targetTopicPrefix)"))
    })?;
    let endpoint = |field: &str, value: Option<String>| {
        let text =
            value.ok_or_else(|| error(format!("{path}.{field}"), "missing; expected LocalMqtt, Pubsub or IotCore"))?;
        Endpoint::parse(&text).ok_or_else(|| {
            error(format!("{path}.{field}"), format!("{text:?} is not one of LocalMqtt, Pubsub, IotCore"))
        })
    };
    let filter = wire.topic.ok_or_else(|| error(format!("{path}.topic"), "missing; expected an MQTT topic filter"))?;
    topic::validate_filter(&filter).map_err(|e| error(format!("{path}.topic"), e.to_string()))?;
    let source = endpoint("source", wire.source)?;
    let target = endpoint("target", wire.target)?;
    if source == target {
        return Err(error(format!("{path}.target"), format!("must differ from source ({source})")));
    }
    let target_topic_prefix = wire.target_topic_prefix.unwrap_or_default();
    if topic::has_wildcard(&target_topic_prefix) {
        return Err(error(format!("{path}.targetTopicPrefix"), "must not contain '+' or '#'"));
    }
    Ok(Route { name: name.to_owned(), filter, source, target, target_topic_prefix, retain_as_published: false })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The step-5 mapping from the tutorial, verbatim.
    fn tutorial() -> Value {
        json!({
          "mqttTopicMapping": {
            "HelloWorldIotCoreMapping": {"topic": "clients/+/hello/world", "source": "LocalMqtt", "target": "IotCore"},
            "HelloWorldPubsubMapping": {"topic": "clients/+/hello/world", "source": "LocalMqtt", "target": "Pubsub"},
            "ShadowsLocalMqttToPubsub": {"topic": "$aws/things/+/shadow/#", "source": "LocalMqtt", "target": "Pubsub"},
            "ShadowsPubsubToLocalMqtt": {"topic": "$aws/things/+/shadow/#", "source": "Pubsub", "target": "LocalMqtt"}
          }
        })
    }

    #[test]
    fn tutorial_mapping_is_accepted_verbatim() {
        let config = BridgeConfig::from_json(&tutorial()).unwrap();
        assert_eq!(config.routes().len(), 4);
        assert_eq!(
            config.source_filters(Endpoint::LocalMqtt),
            vec!["$aws/things/+/shadow/#".to_owned(), "clients/+/hello/world".to_owned()]
        );
        let hello: Vec<_> = config
            .forwards(Endpoint::LocalMqtt, "clients/MyClientDevice1/hello/world")
            .map(|(r, t)| (r.target, t))
            .collect();
        assert_eq!(
            hello,
            vec![
                (Endpoint::IotCore, "clients/MyClientDevice1/hello/world".to_owned()),
                (Endpoint::Pubsub, "clients/MyClientDevice1/hello/world".to_owned())
            ]
        );
    }

    #[test]
    fn target_topic_prefix_is_prepended_to_the_actual_topic() {
        let config = BridgeConfig::from_json(&json!({"mqttTopicMapping": {"ClientDeviceEvents": {
            "topic": "clients/+/detections", "targetTopicPrefix": "events/input/",
            "source": "LocalMqtt", "target": "Pubsub"}}}))
        .unwrap();
        let targets: Vec<_> = config.forwards(Endpoint::LocalMqtt, "clients/d/detections").map(|(_, t)| t).collect();
        assert_eq!(targets, vec!["events/input/clients/d/detections".to_owned()]);
        assert_eq!(config.forwards(Endpoint::Pubsub, "clients/d/detections").count(), 0);
    }

    #[test]
    fn bad_routes_name_the_path_and_the_expectation() {
        let cases = [
            (
                json!({"mqttTopicMapping": {"R": {"topic": "a", "source": "Local", "target": "Pubsub"}}}),
                "mqttTopicMapping.R.source",
            ),
            (json!({"mqttTopicMapping": {"R": {"topic": "a", "source": "Pubsub"}}}), "mqttTopicMapping.R.target"),
            (
                json!({"mqttTopicMapping": {"R": {"source": "Pubsub", "target": "LocalMqtt"}}}),
                "mqttTopicMapping.R.topic",
            ),
            (
                json!({"mqttTopicMapping": {"R": {"topic": "a/#/b", "source": "Pubsub", "target": "LocalMqtt"}}}),
                "mqttTopicMapping.R.topic",
            ),
            (
                json!({"mqttTopicMapping": {"R": {"topic": "a", "source": "Pubsub", "target": "Pubsub"}}}),
                "mqttTopicMapping.R.target",
            ),
            (
                json!({"mqttTopicMapping": {"R": {"topic": "a", "source": "Pubsub", "target": "LocalMqtt", "tpoic": 1}}}),
                "mqttTopicMapping.R",
            ),
            (
                json!({"mqttTopicMapping": {"R": {"topic": 5, "source": "Pubsub", "target": "LocalMqtt"}}}),
                "mqttTopicMapping.R",
            ),
            (
                json!({"mqttTopicMapping": {"R": {"topic": "a", "source": "Pubsub", "target": "LocalMqtt", "targetTopicPrefix": "x/#"}}}),
                "mqttTopicMapping.R.targetTopicPrefix",
            ),
            (json!({"mqttTopicMappings": {}}), "(top level)"),
            (json!({"mqttTopicMapping": []}), "(top level)"),
        ];
        for (config, path) in cases {
            let err = BridgeConfig::from_json(&config).unwrap_err();
            assert_eq!(err.path, path, "{config} -> {err}");
        }
    }

    #[test]
    fn mqtt5_route_options_set_retain_as_published_per_route() {
        let config = BridgeConfig::from_json(&json!({
            "mqttTopicMapping": {
                "Up": {"topic": "up/#", "source": "LocalMqtt", "target": "IotCore"},
                "Other": {"topic": "o/#", "source": "LocalMqtt", "target": "Pubsub"}},
            "mqtt5RouteOptions": {"Up": {"noLocal": true, "retainAsPublished": true}}}))
        .unwrap();
        let by_name = |name: &str| config.routes().iter().find(|r| r.name == name).unwrap().retain_as_published;
        assert!(by_name("Up"));
        assert!(!by_name("Other"), "the default clears retain, as Greengrass does");
        let unknown = BridgeConfig::from_json(&json!({
            "mqttTopicMapping": {"Up": {"topic": "up/#", "source": "LocalMqtt", "target": "IotCore"}},
            "mqtt5RouteOptions": {"Upp": {"retainAsPublished": true}}}))
        .unwrap_err();
        assert_eq!(unknown.path, "mqtt5RouteOptions.Upp");
        let typo = BridgeConfig::from_json(&json!({
            "mqttTopicMapping": {"Up": {"topic": "up/#", "source": "LocalMqtt", "target": "IotCore"}},
            "mqtt5RouteOptions": {"Up": {"retainAsPublish": true}}}))
        .unwrap_err();
        assert!(typo.problem.contains("retainAsPublish"), "{typo:?}");
    }

    #[test]
    fn endpoint_names_are_case_insensitive_and_null_routes_are_absent() {
        let config = BridgeConfig::from_json(&json!({"mqttTopicMapping": {
            "A": {"topic": "a", "source": "localmqtt", "target": "PUBSUB"}, "B": null}}))
        .unwrap();
        assert_eq!(config.routes().len(), 1);
        assert_eq!(config.routes()[0].source, Endpoint::LocalMqtt);
        assert_eq!(BridgeConfig::from_json(&Value::Null).unwrap(), BridgeConfig::default());
    }
}
