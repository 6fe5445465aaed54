//! `aws.greengrass.ShadowManager` configuration.
//!
//! Turf honours `shadowDocumentSizeLimitBytes` (0 means the default of 8192, at most 30720) and
//! `rateLimits` (`maxLocalRequestsPerSecondPerThing`, default 20, and `maxTotalLocalRequestsRate`,
//! default 200; `maxOutboundSyncUpdatesPerSecond` is read by sync). `synchronize` is read by
//! [`super::sync::config`]; `strategy` is accepted and checked for shape (Turf always syncs in
//! real time, paced by the outbound rate). Pure logic: no I/O.

use serde_json::Value;

use super::document::{DEFAULT_MAX_SIZE, MAX_SIZE_LIMIT};
use super::rate::RateLimits;

/// Validated shadow manager settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShadowSettings {
    /// Largest desired + reported size in bytes.
    pub max_document_size: usize,
    /// Local requests allowed per second.
    pub rate_limits: RateLimits,
}

impl Default for ShadowSettings {
    fn default() -> Self {
        Self { max_document_size: DEFAULT_MAX_SIZE, rate_limits: RateLimits::default() }
    }
}

const RATE_KEYS: &[&str] =
    &["maxLocalRequestsPerSecondPerThing", "maxTotalLocalRequestsRate", "maxOutboundSyncUpdatesPerSecond"];

/// Reads `rateLimits`: each a positive whole number (or such a string), unknown keys refused.
fn rate_limits(value: Option<&Value>) -> Result<RateLimits, String> {
    let defaults = RateLimits::default();
    let Some(Value::Object(map)) = value else { return Ok(defaults) };
    if let Some(key) = map.keys().find(|k| !RATE_KEYS.contains(&k.as_str())) {
        return Err(format!("rateLimits.{key}: unknown setting; expected one of {}", RATE_KEYS.join(", ")));
    }
    let read = |key: &str, default: u32| -> Result<u32, String> {
        let parsed = match map.get(key) {
            None | Some(Value::Null) => return Ok(default),
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
            Some(_) => None,
        };
        parsed
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("rateLimits.{key}: must be a whole number of requests per second, at least 1"))
    };
    read("maxOutboundSyncUpdatesPerSecond", 100)?;
    Ok(RateLimits {
        per_thing: read("maxLocalRequestsPerSecondPerThing", defaults.per_thing)?,
        total: read("maxTotalLocalRequestsRate", defaults.total)?,
    })
}

const KEYS: &[&str] = &["shadowDocumentSizeLimitBytes", "synchronize", "strategy", "rateLimits"];

impl ShadowSettings {
    /// Reads the component configuration; errors name the key.
    pub fn from_config(config: &Value) -> Result<Self, String> {
        let Value::Object(map) = config else {
            return if config.is_null() {
                Ok(Self::default())
            } else {
                Err("configuration must be a JSON object".to_owned())
            };
        };
        if let Some(key) = map.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(format!("{key}: unknown setting; expected one of {}", KEYS.join(", ")));
        }

        for key in ["strategy", "rateLimits"] {
            if let Some(value) = map.get(key).filter(|v| !v.is_null() && !v.is_object()) {
                return Err(format!("{key}: must be an object, found {value}"));
            }
        }
        let size = match map.get("shadowDocumentSizeLimitBytes") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => Some(n.as_u64()),
            Some(Value::String(s)) => Some(s.trim().parse::<u64>().ok()),
            Some(_) => Some(None),
        };
        let max_document_size = match size {
            None | Some(Some(0)) => DEFAULT_MAX_SIZE,
            Some(Some(n)) if n <= MAX_SIZE_LIMIT as u64 => n as usize,
            _ => return Err(format!("shadowDocumentSizeLimitBytes: must be a number from 0 to {MAX_SIZE_LIMIT}")),
        };
        Ok(Self { max_document_size, rate_limits: rate_limits(map.get("rateLimits"))? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn size_limit_and_refused_settings() {
        assert_eq!(ShadowSettings::from_config(&json!({})).unwrap().max_document_size, DEFAULT_MAX_SIZE);
        assert_eq!(
            ShadowSettings::from_config(&json!({"shadowDocumentSizeLimitBytes": "0"})).unwrap().max_document_size,
            DEFAULT_MAX_SIZE
        );
        assert_eq!(
            ShadowSettings::from_config(&json!({"shadowDocumentSizeLimitBytes": 30720})).unwrap().max_document_size,
            30720
        );
        for bad in [
            json!({"shadowDocumentSizeLimitBytes": 30721}),
            json!({"shadowDocumentSizeLimitBytes": "big"}),
            json!({"strategy": "realTime"}),
            json!({"shadowSize": 1}),
            json!({"rateLimits": {"maxTotalLocalRequestsRate": 0}}),
            json!({"rateLimits": {"maxLocalRequestsPerSecondPerThing": -1}}),
            json!({"rateLimits": {"maxLocalRequestsPerSecondPerThing": "fast"}}),
            json!({"rateLimits": {"maxLocalRequestPerSecondPerThing": 5}}),
            json!({"rateLimits": 5}),
        ] {
            assert!(ShadowSettings::from_config(&bad).is_err(), "{bad}");
        }
        assert!(ShadowSettings::from_config(&json!({"synchronize": {}, "strategy": {"type": "realTime"}})).is_ok());
    }

    #[test]
    fn rate_limits_default_to_greengrass_and_take_strings() {
        assert_eq!(
            ShadowSettings::from_config(&json!({})).unwrap().rate_limits,
            RateLimits { per_thing: 20, total: 200 }
        );
        let set = ShadowSettings::from_config(&json!({"rateLimits": {
            "maxLocalRequestsPerSecondPerThing": "5", "maxTotalLocalRequestsRate": 50,
            "maxOutboundSyncUpdatesPerSecond": 100}}))
        .unwrap();
        assert_eq!(set.rate_limits, RateLimits { per_thing: 5, total: 50 });
        let err = ShadowSettings::from_config(&json!({"rateLimits": {"maxTotalLocalRequestsRate": 0}})).unwrap_err();
        assert!(err.contains("rateLimits.maxTotalLocalRequestsRate"), "{err}");
    }
}
