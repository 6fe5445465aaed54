//! MQTT topic names and topic filters: validation and wildcard matching.
//!
//! Owns the MQTT 3.1.1 §4.7 / MQTT 5 §4.7 rules shared by the pubsub bus, the bridge and the
//! broker's retained-message store: `+` matches exactly one level, `#` matches the parent level
//! and everything below it, and a filter starting with a wildcard never matches a topic that
//! starts with `$` (MQTT-4.7.2-1). Pure logic: no actors, no I/O.

use thiserror::Error;

/// Longest topic or filter MQTT can encode (a two-byte length prefix).
pub const MAX_TOPIC_BYTES: usize = 65_535;

/// Why a topic name or topic filter is not valid MQTT.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TopicError {
    /// The topic or filter is the empty string.
    #[error("topic is empty")]
    Empty,
    /// The topic or filter is longer than MQTT can encode.
    #[error("topic is {len} bytes long; MQTT allows at most {MAX_TOPIC_BYTES}")]
    TooLong {
        /// Length in bytes.
        len: usize,
    },
    /// The topic or filter contains U+0000, which MQTT forbids (MQTT-1.5.3-2).
    #[error("topic contains a NUL character")]
    Nul,
    /// A topic name (as opposed to a filter) contains `+` or `#`.
    #[error("topic {topic:?} contains the wildcard {wildcard:?}; wildcards are only allowed in subscriptions")]
    WildcardInTopic {
        /// The offending topic.
        topic: String,
        /// The wildcard found.
        wildcard: char,
    },
    /// `+` or `#` shares a level with other characters, or `#` is not the last level.
    #[error("topic filter {filter:?} is invalid: {reason}")]
    BadWildcard {
        /// The offending filter.
        filter: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
}

fn check_common(text: &str) -> Result<(), TopicError> {
    if text.is_empty() {
        return Err(TopicError::Empty);
    }
    if text.len() > MAX_TOPIC_BYTES {
        return Err(TopicError::TooLong { len: text.len() });
    }
    if text.contains('\0') {
        return Err(TopicError::Nul);
    }
    Ok(())
}

/// Checks that `topic` can be published to: non-empty, no NUL, no wildcard characters.
pub fn validate_topic(topic: &str) -> Result<(), TopicError> {
    check_common(topic)?;
    if let Some(wildcard) = topic.chars().find(|c| matches!(c, '+' | '#')) {
        return Err(TopicError::WildcardInTopic { topic: topic.to_owned(), wildcard });
    }
    Ok(())
}

/// Checks that `filter` is a valid subscription filter (MQTT-4.7.1-2, MQTT-4.7.1-3).
pub fn validate_filter(filter: &str) -> Result<(), TopicError> {
    check_common(filter)?;
    let bad = |reason| TopicError::BadWildcard { filter: filter.to_owned(), reason };
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        if level.contains('#') && (level != "#" || levels.peek().is_some()) {
            return Err(bad("'#' must be the whole last level"));
        }
        if level.contains('+') && level != "+" {
            return Err(bad("'+' must occupy a whole level"));
        }
    }
    Ok(())
}

/// True when `filter` contains an MQTT wildcard (`+` or `#`).
pub fn has_wildcard(filter: &str) -> bool {
    filter.contains(['+', '#'])
}

/// True when every topic `requested` (a topic or a filter) can match is matched by `filter`:
/// a request's `+` level needs `+` or `#` in `filter`, its `#` needs `#`. Used where policy
/// resources are MQTT filters (Greengrass's `MQTT_STYLE` for `aws.greengrass.ipc.mqttproxy`).
pub fn filter_covers(filter: &str, requested: &str) -> bool {
    if requested.starts_with('$') && filter.starts_with(['+', '#']) {
        return false;
    }
    let mut wanted = requested.split('/');
    for level in filter.split('/') {
        match (level, wanted.next()) {
            ("#", _) => return true,
            (_, None) => return false,
            (_, Some("#")) => return false,
            ("+", Some(_)) => {}
            (exact, Some(asked)) if exact == asked && asked != "+" => {}
            _ => return false,
        }
    }
    wanted.next().is_none()
}

/// True when the topic name `topic` matches the subscription filter `filter`.
///
/// Both are assumed valid (see [`validate_topic`] and [`validate_filter`]); an invalid filter
/// simply matches nothing it should not.
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && filter.starts_with(['+', '#']) {
        return false;
    }
    let mut topic_levels = topic.split('/');
    for filter_level in filter.split('/') {
        match filter_level {
            "#" => return true,
            "+" => {
                if topic_levels.next().is_none() {
                    return false;
                }
            }
            literal => match topic_levels.next() {
                Some(level) if level == literal => {}
                _ => return false,
            },
        }
    }
    topic_levels.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_filters_match_only_the_same_topic() {
        assert!(matches("a/b/c", "a/b/c"));
        assert!(!matches("a/b/c", "a/b"));
        assert!(!matches("a/b", "a/b/c"));
        assert!(!matches("a/b/c", "a/b/C"));
    }

    #[test]
    fn plus_matches_exactly_one_level_including_empty_levels() {
        assert!(matches("clients/+/hello/world", "clients/MyClientDevice1/hello/world"));
        assert!(!matches("clients/+/hello/world", "clients/a/b/hello/world"));
        assert!(!matches("clients/+/hello/world", "clients/hello/world"));
        assert!(matches("clients/+/hello/world", "clients//hello/world"));
        assert!(matches("+", "a"));
        assert!(!matches("+", "a/b"));
        assert!(matches("+/+", "/"));
        assert!(matches("/+", "/finance"));
    }

    #[test]
    fn hash_matches_parent_and_all_descendants() {
        assert!(matches("sport/#", "sport"));
        assert!(matches("sport/#", "sport/"));
        assert!(matches("sport/#", "sport/tennis/player1"));
        assert!(!matches("sport/#", "sports"));
        assert!(matches("#", "a/b/c"));
        assert!(matches("#", "/"));
        assert!(matches("$aws/things/+/shadow/#", "$aws/things/MyClientDevice1/shadow/update"));
        assert!(matches("$aws/things/+/shadow/#", "$aws/things/d/shadow/name/n/update/delta"));
    }

    #[test]
    fn leading_wildcards_never_match_dollar_topics() {
        assert!(!matches("#", "$aws/things/x/shadow/update"));
        assert!(!matches("+/things/x", "$aws/things/x"));
        assert!(!matches("+/+", "$SYS/x"));
        assert!(matches("$SYS/#", "$SYS/broker/load"));
        assert!(matches("$aws/#", "$aws/x"));
    }

    #[test]
    fn filters_with_misplaced_wildcards_are_rejected() {
        for bad in ["a/#/b", "a#", "a/b#", "a+/b", "a/+b", "##", "+#", "#/"] {
            assert!(matches!(validate_filter(bad), Err(TopicError::BadWildcard { .. })), "{bad}");
        }
        for good in ["#", "+", "a/+/b", "a/#", "+/+/#", "/", "//", "$aws/things/+/shadow/#"] {
            assert_eq!(validate_filter(good), Ok(()), "{good}");
        }
    }

    #[test]
    fn hostile_topics_are_rejected_with_a_reason() {
        assert_eq!(validate_topic(""), Err(TopicError::Empty));
        assert_eq!(validate_filter(""), Err(TopicError::Empty));
        assert_eq!(validate_topic("a\0b"), Err(TopicError::Nul));
        assert!(matches!(validate_topic("a/+/b"), Err(TopicError::WildcardInTopic { wildcard: '+', .. })));
        assert!(matches!(validate_topic("a/#"), Err(TopicError::WildcardInTopic { wildcard: '#', .. })));
        let long = "a".repeat(MAX_TOPIC_BYTES + 1);
        assert_eq!(validate_topic(&long), Err(TopicError::TooLong { len: MAX_TOPIC_BYTES + 1 }));
        assert_eq!(validate_topic(&"a/".repeat(1000)), Ok(()));
        assert_eq!(validate_topic("ünïcödé/トピック"), Ok(()));
    }

    #[test]
    fn matching_is_safe_on_deep_and_odd_topics() {
        let deep = vec!["x"; 5000].join("/");
        assert!(matches("#", &deep));
        assert!(!matches("x/+", &deep));
        let deep_filter = vec!["+"; 5000].join("/");
        assert!(matches(&deep_filter, &deep));
        assert!(!matches("a", ""));
        assert!(matches("+", ""));
        assert!(!matches("$aws", "$aws/x"));
    }

    #[test]
    fn a_policy_filter_covers_requests_no_wider_than_itself() {
        let covers = |f, r| filter_covers(f, r);
        assert!(covers("cloud/#", "cloud/a/b"));
        assert!(covers("cloud/#", "cloud/+/b"));
        assert!(covers("cloud/#", "cloud/#"));
        assert!(covers("cloud/+/status", "cloud/x/status"));
        assert!(covers("cloud/+/status", "cloud/+/status"));
        assert!(!covers("cloud/+/status", "cloud/#"));
        assert!(!covers("cloud/+", "cloud/a/b"));
        assert!(!covers("cloud/a", "cloud/+"));
        assert!(!covers("cloud/a", "cloud/a/b"));
        assert!(!covers("cloud/a/b", "cloud/a"));
        assert!(covers("#", "anything/at/all"));
        assert!(!covers("#", "$aws/things/x/shadow/get"));
        assert!(covers("$aws/things/+/shadow/#", "$aws/things/x/shadow/get"));
    }
}
