//! Core device connectivity: the endpoints discovery hands to client devices.
//!
//! The `Connectivity` actor plays `aws.greengrass.clientdevices.IPDetector`: every 60 s it lists
//! the host's addresses and keeps those its configuration allows; a manual endpoint list
//! (`turf connectivity set`, Greengrass's "Manage core device endpoints") replaces detection
//! until cleared. Messages in: [`ConfigureIpDetector`], [`SetManualConnectivity`],
//! [`GetConnectivity`]. Messages out: [`ConnectivityChanged`] whenever the list changes (the
//! device-auth service re-issues the broker's certificate from it and answers discovery with it).
//! Owns the `connectivity.manual` setting; never touches other tables.
//!
//! - `detect`: IP detector settings, address selection, endpoint parsing (pure).

pub mod detect;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use actix::prelude::*;
use rusqlite::{Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use self::detect::{ConnectivityInfo, IpDetectorConfig};

/// How often the IP detector looks at the interfaces (Greengrass: 60 s).
pub const DETECT_EVERY: Duration = Duration::from_secs(60);
const MANUAL_KEY: &str = "connectivity.manual";

/// Why the stored manual endpoint list cannot be read or written.
#[derive(Debug, Error)]
pub enum ConnectivityError {
    /// A query failed.
    #[error("connectivity settings: cannot {action}: {source}")]
    Sql {
        /// What was being done.
        action: &'static str,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// The stored list does not parse (`turf connectivity set` or `clear` replaces it).
    #[error(
        "the stored manual endpoint list ({MANUAL_KEY}) is unreadable: {0}; replace it with `turf connectivity set` or `clear`"
    )]
    Corrupt(String),
}

/// The connectivity list changed.
#[derive(Message, Debug, Clone, PartialEq, Eq)]
#[rtype(result = "()")]
pub struct ConnectivityChanged(pub Vec<ConnectivityInfo>);

/// New IP detector settings (from a deployment).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct ConfigureIpDetector(pub IpDetectorConfig);

/// Replace detection with a fixed list (`Some`), or go back to detection (`None`).
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<ConnectivityReport, ConnectivityError>")]
pub struct SetManualConnectivity(pub Option<Vec<ConnectivityInfo>>);

/// The current list and where it comes from.
#[derive(Message, Debug, Clone)]
#[rtype(result = "ConnectivityReport")]
pub struct GetConnectivity;

/// What `turf connectivity show` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, MessageResponse)]
pub struct ConnectivityReport {
    /// `manual` or `ip-detector`.
    pub source: String,
    /// The endpoints.
    pub entries: Vec<ConnectivityInfo>,
    /// Why the stored manual list was not used, if it could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// Addresses of the host's up interfaces.
pub fn interface_addresses() -> Vec<IpAddr> {
    if_addrs::get_if_addrs().map(|list| list.into_iter().map(|i| i.ip()).collect()).unwrap_or_default()
}

/// The manual endpoint list stored in the database, if any.
pub fn load_manual(conn: &Connection) -> Result<Option<Vec<ConnectivityInfo>>, ConnectivityError> {
    let text: Option<String> = conn
        .query_row("SELECT value FROM settings WHERE key = ?1", [MANUAL_KEY], |r| r.get(0))
        .optional()
        .map_err(|source| ConnectivityError::Sql { action: "read the manual endpoint list", source })?;
    text.map(|t| serde_json::from_str(&t).map_err(|e| ConnectivityError::Corrupt(e.to_string()))).transpose()
}

/// Stores (or with `None` deletes) the manual endpoint list.
pub fn save_manual(conn: &Connection, manual: Option<&Vec<ConnectivityInfo>>) -> Result<(), ConnectivityError> {
    let result = match manual {
        Some(list) => conn.execute(
            "INSERT INTO settings(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            rusqlite::params![
                MANUAL_KEY,
                serde_json::to_string(list).map_err(|e| ConnectivityError::Corrupt(e.to_string()))?
            ],
        ),
        None => conn.execute("DELETE FROM settings WHERE key = ?1", [MANUAL_KEY]),
    };
    result.map(|_| ()).map_err(|source| ConnectivityError::Sql { action: "save the manual endpoint list", source })
}

/// What the connectivity service offers, built once by the supervisor.
#[derive(Clone)]
pub struct ConnectivityHandle {
    /// The current list.
    pub get: Recipient<GetConnectivity>,
    /// Set or clear the manual list.
    pub set: Recipient<SetManualConnectivity>,
    /// New IP detector settings.
    pub configure: Recipient<ConfigureIpDetector>,
}

impl ConnectivityHandle {
    /// The handle of a running connectivity service.
    pub fn of(addr: &Addr<Connectivity>) -> Self {
        Self { get: addr.clone().recipient(), set: addr.clone().recipient(), configure: addr.clone().recipient() }
    }
}

/// The connectivity service.
pub struct Connectivity {
    conn: Connection,
    config: IpDetectorConfig,
    manual: Option<Vec<ConnectivityInfo>>,
    /// Why the stored manual list was not used (until a new one is set or it is cleared).
    problem: Option<String>,
    broker: SocketAddr,
    current: Vec<ConnectivityInfo>,
    listener: Recipient<ConnectivityChanged>,
}

impl Connectivity {
    /// Keeps its settings in `conn`, starting from the `stored` manual endpoints loaded from it
    /// ([`load_manual`]); reports to `listener`. An unreadable stored list is not guessed at:
    /// the IP detector runs and every report says why until the operator replaces the list.
    pub fn new(
        conn: Connection,
        stored: Result<Option<Vec<ConnectivityInfo>>, ConnectivityError>,
        broker: SocketAddr,
        listener: Recipient<ConnectivityChanged>,
    ) -> Self {
        let (manual, problem) = match stored {
            Ok(manual) => (manual, None),
            Err(error) => {
                tracing::error!(%error, "using the IP detector instead");
                (None, Some(error.to_string()))
            }
        };
        Self { conn, config: IpDetectorConfig::default(), manual, problem, broker, current: Vec::new(), listener }
    }

    fn compute(&self) -> Vec<ConnectivityInfo> {
        match &self.manual {
            Some(list) => list.clone(),
            None => self.config.select(&interface_addresses(), self.broker),
        }
    }

    fn refresh(&mut self) {
        let next = self.compute();
        if next != self.current {
            let hosts: Vec<&str> = next.iter().map(|c| c.host_address.as_str()).collect();
            tracing::info!(?hosts, manual = self.manual.is_some(), "connectivity changed");
            self.current = next;
            self.listener.do_send(ConnectivityChanged(self.current.clone()));
        }
    }

    fn report(&self) -> ConnectivityReport {
        let source = if self.manual.is_some() { "manual" } else { "ip-detector" };
        ConnectivityReport { source: source.to_owned(), entries: self.current.clone(), problem: self.problem.clone() }
    }
}

impl Actor for Connectivity {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.current = self.compute();
        self.listener.do_send(ConnectivityChanged(self.current.clone()));
        ctx.run_interval(DETECT_EVERY, |act, _| act.refresh());
    }
}

impl Handler<ConfigureIpDetector> for Connectivity {
    type Result = ();

    fn handle(&mut self, msg: ConfigureIpDetector, _ctx: &mut Self::Context) {
        self.config = msg.0;
        self.refresh();
    }
}

impl Handler<SetManualConnectivity> for Connectivity {
    type Result = Result<ConnectivityReport, ConnectivityError>;

    fn handle(&mut self, msg: SetManualConnectivity, _ctx: &mut Self::Context) -> Self::Result {
        save_manual(&self.conn, msg.0.as_ref())?;
        self.manual = msg.0;
        self.problem = None;
        self.refresh();
        Ok(self.report())
    }
}

impl Handler<GetConnectivity> for Connectivity {
    type Result = ConnectivityReport;

    fn handle(&mut self, _msg: GetConnectivity, _ctx: &mut Self::Context) -> ConnectivityReport {
        self.report()
    }
}
