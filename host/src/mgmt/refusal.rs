//! The one place a service's refusal becomes an HTTP answer.
//!
//! Every service replies to the management API with its own error enum; each variant maps here
//! to one status, and the body is always [`ErrorBody`](super::api::ErrorBody) with the error's
//! text, which is what the CLI prints. A request the caller got wrong is 4xx; the host's own
//! failure (a database that cannot be read, a file that cannot be written) is 5xx, never a 400
//! that would blame the caller.

use actix_web::http::StatusCode;

use crate::components::RuntimeError;
use crate::connectivity::ConnectivityError;
use crate::deploy::DeploymentError;
use crate::devices::book::DeviceError;
use crate::devices::ca::CaError;
use crate::devices::registry::RegistryError;
use crate::shadow::document::ShadowError;

/// A service error the management API can answer with.
pub trait Refusal: std::fmt::Display {
    /// The HTTP status this refusal is answered with.
    fn status(&self) -> StatusCode;
}

impl Refusal for DeviceError {
    fn status(&self) -> StatusCode {
        match self {
            Self::Registry(e) => e.status(),
            Self::Ca(e) => e.status(),
            Self::WriteFile { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl Refusal for RegistryError {
    fn status(&self) -> StatusCode {
        match self {
            Self::ThingName(_) | Self::BadCertificate { .. } | Self::UntrustedIssuer { .. } | Self::BadCa(_) => {
                StatusCode::BAD_REQUEST
            }
            Self::UnknownThing(_) | Self::NotTrusted(_) => StatusCode::NOT_FOUND,
            Self::AlreadyRegistered { .. } | Self::SameSerialAndSubject { .. } | Self::CaInUse { .. } => {
                StatusCode::CONFLICT
            }
            Self::Store(_) | Self::Sql { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl Refusal for CaError {
    fn status(&self) -> StatusCode {
        match self {
            Self::Io { .. } | Self::Corrupt { .. } | Self::HalfPresent { .. } | Self::Issue { .. } => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }
}

impl Refusal for ConnectivityError {
    fn status(&self) -> StatusCode {
        match self {
            Self::Sql { .. } | Self::Corrupt(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl Refusal for DeploymentError {
    fn status(&self) -> StatusCode {
        match self {
            Self::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            Self::Records(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl Refusal for RuntimeError {
    fn status(&self) -> StatusCode {
        match self {
            Self::NotDeployed(_) => StatusCode::NOT_FOUND,
            Self::ShuttingDown(_) => StatusCode::SERVICE_UNAVAILABLE,
            // The component itself failed to come up: the request was fine, the state is not.
            Self::Start { .. } => StatusCode::CONFLICT,
            Self::Compile(_) | Self::Link { .. } | Self::Log { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// Shadow errors carry AWS's own codes (400, 404, 409, 413, 429, 500, ...).
impl Refusal for ShadowError {
    fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_callers_mistakes_are_4xx_and_the_hosts_failures_5xx() {
        let unknown = DeviceError::Registry(RegistryError::UnknownThing("x".into()));
        assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
        let sql = DeviceError::Registry(RegistryError::Sql {
            action: "list things".into(),
            source: rusqlite::Error::InvalidQuery,
        });
        assert_eq!(sql.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(RuntimeError::NotDeployed("x".into()).status(), StatusCode::NOT_FOUND);
        assert_eq!(DeploymentError::ShuttingDown.status(), StatusCode::SERVICE_UNAVAILABLE);
        let corrupt = ConnectivityError::Corrupt("expected value".into());
        assert_eq!(corrupt.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let odd = ShadowError { code: 7, message: "odd".into(), client_token: None };
        assert_eq!(odd.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
