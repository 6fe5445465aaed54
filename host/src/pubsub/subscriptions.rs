//! The subscription table of the local pubsub bus, with Greengrass receive modes.
//!
//! Greengrass's `SubscribeToTopic` receives every matching message for an exact topic, but for a
//! wildcard filter defaults to `RECEIVE_MESSAGES_FROM_OTHERS`: the subscriber's own publishes
//! are not echoed back. That rule is what keeps a two-way bridge route (LocalMqtt ↔ Pubsub on the
//! same filter) from looping. A subscriber gets a message once even when several of its filters
//! match. Pure logic, generic over the delivery target: no actors.

use crate::topic;

/// Which messages a subscription receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiveMode {
    /// Every matching message, including the subscriber's own.
    All,
    /// Matching messages published by others.
    FromOthers,
}

impl ReceiveMode {
    /// Greengrass's default for `filter`: from others for wildcard filters, all otherwise.
    pub fn default_for(filter: &str) -> Self {
        if topic::has_wildcard(filter) { ReceiveMode::FromOthers } else { ReceiveMode::All }
    }
}

#[derive(Debug, Clone)]
struct Entry<T> {
    subscriber: String,
    filter: String,
    mode: ReceiveMode,
    target: T,
}

/// Subscriptions of named subscribers to topic filters, each with a delivery target `T`.
#[derive(Debug, Clone)]
pub struct Subscriptions<T> {
    entries: Vec<Entry<T>>,
}

impl<T> Default for Subscriptions<T> {
    fn default() -> Self {
        Self { entries: Vec::new() }
    }
}

impl<T: Clone> Subscriptions<T> {
    /// Adds (or replaces) `subscriber`'s subscription to `filter`.
    pub fn subscribe(&mut self, subscriber: &str, filter: &str, mode: ReceiveMode, target: T) {
        self.unsubscribe(subscriber, filter);
        self.entries.push(Entry { subscriber: subscriber.to_owned(), filter: filter.to_owned(), mode, target });
    }

    /// Removes `subscriber`'s subscription to `filter`; true if there was one.
    pub fn unsubscribe(&mut self, subscriber: &str, filter: &str) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| !(e.subscriber == subscriber && e.filter == filter));
        before != self.entries.len()
    }

    /// Removes every subscription of `subscriber`.
    pub fn remove_subscriber(&mut self, subscriber: &str) {
        self.entries.retain(|e| e.subscriber != subscriber);
    }

    /// Keeps only subscriptions whose target passes `alive`.
    pub fn retain_targets(&mut self, alive: impl Fn(&T) -> bool) {
        self.entries.retain(|e| alive(&e.target));
    }

    /// Filters `subscriber` holds, in subscription order.
    pub fn filters_of(&self, subscriber: &str) -> Vec<String> {
        self.entries.iter().filter(|e| e.subscriber == subscriber).map(|e| e.filter.clone()).collect()
    }

    /// Total number of subscriptions.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nobody is subscribed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Targets that should receive a message `publisher` published on `topic`: one per
    /// subscriber, in the order subscribers first subscribed.
    pub fn targets(&self, publisher: &str, topic: &str) -> Vec<T> {
        let mut seen: Vec<&str> = Vec::new();
        let mut out = Vec::new();
        for e in &self.entries {
            let own = e.subscriber == publisher;
            if (own && e.mode == ReceiveMode::FromOthers) || !topic::matches(&e.filter, topic) {
                continue;
            }
            if seen.contains(&e.subscriber.as_str()) {
                continue;
            }
            seen.push(&e.subscriber);
            out.push(e.target.clone());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Subscriptions<&'static str> {
        let mut s = Subscriptions::default();
        s.subscribe("hello", "clients/+/hello/world", ReceiveMode::default_for("clients/+/hello/world"), "hello");
        s.subscribe("bridge", "clients/+/hello/world", ReceiveMode::default_for("clients/+/hello/world"), "bridge");
        s
    }

    #[test]
    fn wildcard_subscribers_do_not_receive_their_own_publishes() {
        let s = table();
        assert_eq!(s.targets("bridge", "clients/d1/hello/world"), vec!["hello"]);
        assert_eq!(s.targets("other", "clients/d1/hello/world"), vec!["hello", "bridge"]);
    }

    #[test]
    fn exact_subscribers_receive_their_own_publishes() {
        let mut s = Subscriptions::default();
        s.subscribe("c", "a/b", ReceiveMode::default_for("a/b"), "c");
        assert_eq!(s.targets("c", "a/b"), vec!["c"]);
    }

    #[test]
    fn overlapping_filters_deliver_once_per_subscriber() {
        let mut s = Subscriptions::default();
        s.subscribe("c", "a/#", ReceiveMode::All, "c");
        s.subscribe("c", "a/+", ReceiveMode::All, "c");
        assert_eq!(s.targets("x", "a/b"), vec!["c"]);
        assert!(s.unsubscribe("c", "a/#"));
        assert_eq!(s.targets("x", "a/b"), vec!["c"]);
        assert!(!s.unsubscribe("c", "a/#"));
        s.remove_subscriber("c");
        assert!(s.targets("x", "a/b").is_empty());
    }

    #[test]
    fn dollar_topics_need_an_explicit_dollar_filter() {
        let mut s = Subscriptions::default();
        s.subscribe("all", "#", ReceiveMode::FromOthers, "all");
        s.subscribe("shadow", "$aws/things/+/shadow/#", ReceiveMode::FromOthers, "shadow");
        assert_eq!(s.targets("x", "$aws/things/t/shadow/update"), vec!["shadow"]);
        assert_eq!(s.targets("x", "a"), vec!["all"]);
    }
}
