//! Shadow topics and names: `$aws/things/{thing}/shadow[/name/{shadow}]/{get|update|delete}`.
//!
//! Requests are the three operations; everything under them (`/accepted`, `/rejected`, `/delta`,
//! `/documents`) is a response and never processed again. Thing names are at most 128 and shadow
//! names at most 64 characters of `[a-zA-Z0-9:_-]`. Pure logic: no I/O.

use std::fmt;

use super::document::{ShadowError, invalid};

/// Longest thing name.
pub const MAX_THING_NAME: usize = 128;
/// Longest shadow name.
pub const MAX_SHADOW_NAME: usize = 64;

/// A shadow operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `get`.
    Get,
    /// `update`.
    Update,
    /// `delete`.
    Delete,
}

impl Operation {
    /// The topic word.
    pub fn word(self) -> &'static str {
        match self {
            Operation::Get => "get",
            Operation::Update => "update",
            Operation::Delete => "delete",
        }
    }
}

/// Which shadow: a thing and a shadow name (empty for the classic shadow).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShadowId {
    /// Thing name.
    pub thing: String,
    /// Shadow name; empty for the classic (unnamed) shadow.
    pub name: String,
}

impl fmt::Display for ShadowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.name.is_empty() { write!(f, "{}", self.thing) } else { write!(f, "{}~{}", self.thing, self.name) }
    }
}

fn valid_chars(text: &str) -> bool {
    text.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-'))
}

impl ShadowId {
    /// A validated id; errors carry the AWS 400 messages.
    pub fn new(thing: &str, name: &str) -> Result<Self, ShadowError> {
        if thing.is_empty() {
            return Err(invalid("ThingName is missing"));
        }
        if thing.chars().count() > MAX_THING_NAME {
            return Err(invalid(&format!("ThingName has a maximum length of {MAX_THING_NAME}")));
        }
        if !valid_chars(thing) {
            return Err(invalid("ThingName must match pattern [a-zA-Z0-9:_-]+"));
        }
        if name.chars().count() > MAX_SHADOW_NAME {
            return Err(invalid(&format!("ShadowName has a maximum length of {MAX_SHADOW_NAME}")));
        }
        if !name.is_empty() && !valid_chars(name) {
            return Err(invalid("ShadowName must match pattern [a-zA-Z0-9:_-]+"));
        }
        Ok(Self { thing: thing.to_owned(), name: name.to_owned() })
    }

    /// `$aws/things/{thing}/shadow[/name/{name}]`.
    pub fn prefix(&self) -> String {
        if self.name.is_empty() {
            format!("$aws/things/{}/shadow", self.thing)
        } else {
            format!("$aws/things/{}/shadow/name/{}", self.thing, self.name)
        }
    }

    /// A response topic, e.g. `.../update/accepted`.
    pub fn topic(&self, operation: Operation, suffix: &str) -> String {
        format!("{}/{}/{suffix}", self.prefix(), operation.word())
    }

    /// The resource name `accessControl` checks (`$aws/things/T/shadow[/name/N]`).
    pub fn resource(&self) -> String {
        self.prefix()
    }
}

/// A request topic, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestTopic {
    /// Which shadow.
    pub shadow: ShadowId,
    /// Which operation.
    pub operation: Operation,
}

/// Parses a request topic. `None` for anything that is not a request (responses included);
/// `Some(Err(..))` for a request with an invalid thing or shadow name.
pub fn parse_request(topic: &str) -> Option<Result<RequestTopic, ShadowError>> {
    let levels: Vec<&str> = topic.split('/').collect();
    let (thing, name, op) = match levels.as_slice() {
        ["$aws", "things", thing, "shadow", op] => (*thing, "", *op),
        ["$aws", "things", thing, "shadow", "name", name, op] => (*thing, *name, *op),
        _ => return None,
    };
    let operation = match op {
        "get" => Operation::Get,
        "update" => Operation::Update,
        "delete" => Operation::Delete,
        _ => return None,
    };
    Some(ShadowId::new(thing, name).map(|shadow| RequestTopic { shadow, operation }))
}

/// A response topic, parsed: the shadow, its operation, and the suffix (`accepted`, `rejected`,
/// `delta`, `documents`). `None` for anything else, a name that is not valid included.
pub fn parse_response(topic: &str) -> Option<(ShadowId, Operation, &str)> {
    let levels: Vec<&str> = topic.split('/').collect();
    let (thing, name, op, suffix) = match levels.as_slice() {
        ["$aws", "things", thing, "shadow", op, suffix] => (*thing, "", *op, *suffix),
        ["$aws", "things", thing, "shadow", "name", name, op, suffix] => (*thing, *name, *op, *suffix),
        _ => return None,
    };
    let operation = match op {
        "get" => Operation::Get,
        "update" => Operation::Update,
        "delete" => Operation::Delete,
        _ => return None,
    };
    if !matches!(suffix, "accepted" | "rejected" | "delta" | "documents") {
        return None;
    }
    Some((ShadowId::new(thing, name).ok()?, operation, suffix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_and_responses_are_ignored() {
        let classic = parse_request("$aws/things/MyClientDevice1/shadow/update").unwrap().unwrap();
        assert_eq!(classic.shadow, ShadowId { thing: "MyClientDevice1".to_owned(), name: String::new() });
        assert_eq!(classic.operation, Operation::Update);
        let named = parse_request("$aws/things/t/shadow/name/lamp/get").unwrap().unwrap();
        assert_eq!(named.shadow.name, "lamp");
        assert_eq!(named.shadow.topic(Operation::Get, "accepted"), "$aws/things/t/shadow/name/lamp/get/accepted");
        for response in [
            "$aws/things/t/shadow/update/accepted",
            "$aws/things/t/shadow/update/delta",
            "$aws/things/t/shadow/name/n/delete/rejected",
            "$aws/things/t/shadow",
            "$aws/things/t/shadow/patch",
            "clients/t/hello",
            "$aws/things/t/shadow/name/get",
        ] {
            assert!(parse_request(response).is_none(), "{response}");
        }
    }

    #[test]
    fn responses_parse_and_requests_do_not() {
        let (shadow, op, suffix) = parse_response("$aws/things/t/shadow/name/n/update/documents").unwrap();
        assert_eq!(
            (shadow.thing.as_str(), shadow.name.as_str(), op, suffix),
            ("t", "n", Operation::Update, "documents")
        );
        assert_eq!(parse_response("$aws/things/t/shadow/delete/accepted").map(|r| r.2), Some("accepted"));
        for other in
            ["$aws/things/t/shadow/update", "$aws/things/t/shadow/update/other", "$aws/things/a b/shadow/get/accepted"]
        {
            assert!(parse_response(other).is_none(), "{other}");
        }
    }

    #[test]
    fn names_follow_aws_limits() {
        assert!(ShadowId::new(&"a".repeat(128), &"b".repeat(64)).is_ok());
        assert!(ShadowId::new(&"a".repeat(129), "").is_err());
        assert!(ShadowId::new("a", &"b".repeat(65)).is_err());
        assert!(matches!(parse_request("$aws/things/a b/shadow/get"), Some(Err(_))));
        assert!(matches!(parse_request("$aws/things//shadow/get"), Some(Err(_))));
        assert!(matches!(parse_request("$aws/things/t/shadow/name/a.b/get"), Some(Err(_))));
        assert_eq!(ShadowId::new("t", "n").unwrap().resource(), "$aws/things/t/shadow/name/n");
    }
}
