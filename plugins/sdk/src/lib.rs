//! Guest SDK for Turf WebAssembly components: the `turf:host` API without binding plumbing.
//!
//! A component implements [`Component`] (every method but `init` has a default) and exports it
//! with [`export_component!`]. Its `println!`/`eprintln!` output goes to its log file,
//! `logs/<ComponentName>.log`, one timestamped line per line.
//!
//! ```ignore
//! struct Hello;
//! impl turf_sdk::Component for Hello {
//!     fn init() -> Result<(), String> {
//!         turf_sdk::pubsub::subscribe("clients/+/hello/world").map_err(|e| e.to_string())
//!     }
//!     fn on_message(topic: String, payload: Vec<u8>) {
//!         println!("{topic}: {}", String::from_utf8_lossy(&payload));
//!     }
//! }
//! turf_sdk::export_component!(Hello);
//! ```

/// The generated bindings (use the wrappers below instead).
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "turf-component",
        pub_export_macro: true,
        default_bindings_module: "turf_sdk::bindings",
    });
}

use std::fmt;
use std::time::Duration;

use bindings::turf::host;

/// Why a host call failed (Greengrass IPC error kinds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The recipe's `accessControl` does not allow it.
    Unauthorized(String),
    /// The thing asked for does not exist.
    ResourceNotFound(String),
    /// An argument is malformed.
    InvalidArguments(String),
    /// It conflicts with the current state.
    Conflict(String),
    /// The host could not do it right now.
    ServiceError(String),
}

impl From<host::types::Error> for Error {
    fn from(e: host::types::Error) -> Self {
        use host::types::Error as E;
        match e {
            E::Unauthorized(m) => Error::Unauthorized(m),
            E::ResourceNotFound(m) => Error::ResourceNotFound(m),
            E::InvalidArguments(m) => Error::InvalidArguments(m),
            E::Conflict(m) => Error::Conflict(m),
            E::ServiceError(m) => Error::ServiceError(m),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Unauthorized(m) => write!(f, "unauthorized: {m}"),
            Error::ResourceNotFound(m) => write!(f, "resource not found: {m}"),
            Error::InvalidArguments(m) => write!(f, "invalid arguments: {m}"),
            Error::Conflict(m) => write!(f, "conflict: {m}"),
            Error::ServiceError(m) => write!(f, "service error: {m}"),
        }
    }
}

impl std::error::Error for Error {}

/// The local publish/subscribe bus.
pub mod pubsub {
    use super::{Error, host};

    /// Publishes `payload` on `topic` (no wildcards).
    pub fn publish(topic: &str, payload: &[u8]) -> Result<(), Error> {
        host::pubsub::publish(topic, payload).map_err(Error::from)
    }

    /// Subscribes to `filter`; messages arrive in [`crate::Component::on_message`].
    pub fn subscribe(filter: &str) -> Result<(), Error> {
        host::pubsub::subscribe(filter).map_err(Error::from)
    }

    /// Stops the subscription to `filter`.
    pub fn unsubscribe(filter: &str) -> Result<(), Error> {
        host::pubsub::unsubscribe(filter).map_err(Error::from)
    }

    /// Publishes `payload` on `topic` at the upstream broker (QoS 1, spooled while it is away).
    pub fn publish_to_iotcore(topic: &str, payload: &[u8]) -> Result<(), Error> {
        host::pubsub::publish_to_iotcore(topic, payload).map_err(Error::from)
    }

    /// Subscribes to `filter` at the upstream broker; messages arrive in
    /// [`Component::on_iotcore_message`](crate::Component::on_iotcore_message).
    pub fn subscribe_to_iotcore(filter: &str) -> Result<(), Error> {
        host::pubsub::subscribe_to_iotcore(filter).map_err(Error::from)
    }

    /// Removes an upstream subscription.
    pub fn unsubscribe_from_iotcore(filter: &str) -> Result<(), Error> {
        host::pubsub::unsubscribe_from_iotcore(filter).map_err(Error::from)
    }
}

/// Component configuration.
pub mod config {
    use super::{Error, host};

    /// This component's configuration at `key_path` as JSON text (leaves come as `{"key": value}`).
    pub fn get(key_path: &[&str]) -> Result<String, Error> {
        let path: Vec<String> = key_path.iter().map(|k| (*k).to_owned()).collect();
        host::config::get_configuration(None, &path).map_err(Error::from)
    }

    /// Another component's configuration at `key_path` as JSON text.
    pub fn get_of(component: &str, key_path: &[&str]) -> Result<String, Error> {
        let path: Vec<String> = key_path.iter().map(|k| (*k).to_owned()).collect();
        host::config::get_configuration(Some(component), &path).map_err(Error::from)
    }

    /// Deep-merges the JSON object `value` into this component's configuration at `key_path`.
    pub fn update(key_path: &[&str], value: &str) -> Result<(), Error> {
        let path: Vec<String> = key_path.iter().map(|k| (*k).to_owned()).collect();
        host::config::update_configuration(&path, value).map_err(Error::from)
    }

    /// Calls [`crate::Component::on_configuration_update`] when this component's configuration
    /// changes at or below `key_path`.
    pub fn subscribe(key_path: &[&str]) -> Result<(), Error> {
        let path: Vec<String> = key_path.iter().map(|k| (*k).to_owned()).collect();
        host::config::subscribe_to_configuration_update(None, &path).map_err(Error::from)
    }

    /// Like [`subscribe`], for another component's configuration.
    pub fn subscribe_of(component: &str, key_path: &[&str]) -> Result<(), Error> {
        let path: Vec<String> = key_path.iter().map(|k| (*k).to_owned()).collect();
        host::config::subscribe_to_configuration_update(Some(component), &path).map_err(Error::from)
    }
}

/// Local device shadows; documents are AWS IoT shadow JSON (bytes).
pub mod shadow {
    use super::{Error, host};

    pub use super::host::shadow::NamedShadows;

    /// The shadow document of `thing`'s shadow `name` ("" for the classic shadow).
    pub fn get(thing: &str, name: &str) -> Result<Vec<u8>, Error> {
        host::shadow::get_thing_shadow(thing, name).map_err(Error::from)
    }

    /// Applies an update request; returns the `update/accepted` document.
    pub fn update(thing: &str, name: &str, payload: &[u8]) -> Result<Vec<u8>, Error> {
        host::shadow::update_thing_shadow(thing, name, payload).map_err(Error::from)
    }

    /// Deletes the shadow; returns the `delete/accepted` document.
    pub fn delete(thing: &str, name: &str) -> Result<Vec<u8>, Error> {
        host::shadow::delete_thing_shadow(thing, name).map_err(Error::from)
    }

    /// One page of `thing`'s named shadows.
    pub fn list_named(thing: &str, next_token: Option<&str>, page_size: Option<u32>) -> Result<NamedShadows, Error> {
        host::shadow::list_named_shadows_for_thing(thing, next_token, page_size).map_err(Error::from)
    }
}

/// Structured log lines (besides plain `println!`).
pub mod log {
    use super::host::logging::{Level, log};

    /// Logs at INFO.
    pub fn info(message: &str) {
        log(Level::Info, message);
    }

    /// Logs at WARN.
    pub fn warn(message: &str) {
        log(Level::Warn, message);
    }

    /// Logs at ERROR.
    pub fn error(message: &str) {
        log(Level::Error, message);
    }

    /// Logs at DEBUG.
    pub fn debug(message: &str) {
        log(Level::Debug, message);
    }
}

/// Host-driven timers.
pub mod timer {
    use super::{Duration, Error, host};

    /// Calls [`crate::Component::on_timer`] every `period`; returns the timer id.
    pub fn set_interval(period: Duration) -> Result<u32, Error> {
        let ms = u64::try_from(period.as_millis()).unwrap_or(u64::MAX);
        host::timer::set_interval(ms).map_err(Error::from)
    }

    /// Stops timer `id`.
    pub fn cancel(id: u32) -> Result<(), Error> {
        host::timer::cancel(id).map_err(Error::from)
    }
}

/// What a Turf component does. Only `init` is required.
pub trait Component {
    /// Called once after instantiation; an error marks the component ERRORED.
    fn init() -> Result<(), String>;

    /// A message arrived on a subscribed topic.
    fn on_message(_topic: String, _payload: Vec<u8>) {}

    /// A message arrived from the upstream broker (see [`pubsub::subscribe_to_iotcore`]).
    fn on_iotcore_message(_topic: String, _payload: Vec<u8>) {}

    /// A deployment changed configuration under `key_path`.
    fn on_configuration_update(_component: String, _key_path: Vec<String>) {}

    /// Timer `id` fired.
    fn on_timer(_id: u32) {}
}

/// Exports a [`Component`] implementation as the WebAssembly component's entry points.
#[macro_export]
macro_rules! export_component {
    ($component:ident) => {
        impl $crate::bindings::Guest for $component {
            fn init() -> Result<(), String> {
                <$component as $crate::Component>::init()
            }
            fn on_message(topic: String, payload: Vec<u8>) {
                <$component as $crate::Component>::on_message(topic, payload)
            }
            fn on_iotcore_message(topic: String, payload: Vec<u8>) {
                <$component as $crate::Component>::on_iotcore_message(topic, payload)
            }
            fn on_configuration_update(component: String, key_path: Vec<String>) {
                <$component as $crate::Component>::on_configuration_update(component, key_path)
            }
            fn on_timer(id: u32) {
                <$component as $crate::Component>::on_timer(id)
            }
        }
        $crate::bindings::export!($component with_types_in $crate::bindings);
    };
}
