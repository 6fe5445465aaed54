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

pub use self::detect::{ConnectivityInfo, IpDetectorConfig};

/// How often the IP detector looks at the interfaces (Greengrass: 60 s).
pub const DETECT_EVERY: Duration = Duration::from_secs(60);
const MANUAL_KEY: &str = "connectivity.manual";

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
#[rtype(result = "Result<ConnectivityReport, String>")]
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
}

/// Addresses of the host's up interfaces.
pub fn interface_addresses() -> Vec<IpAddr> {
    if_addrs::get_if_addrs().map(|list| list.into_iter().map(|i| i.ip()).collect()).unwrap_or_default()
}

/// The manual endpoint list stored in the database, if any.
pub fn load_manual(conn: &Connection) -> Option<Vec<ConnectivityInfo>> {
    let text: Option<String> = conn
        .query_row("SELECT value FROM settings WHERE key = ?1", [MANUAL_KEY], |r| r.get(0))
        .optional()
        .ok()
        .flatten();
    text.and_then(|t| serde_json::from_str(&t).ok())
}

/// Stores (or with `None` deletes) the manual endpoint list.
pub fn save_manual(conn: &Connection, manual: Option<&Vec<ConnectivityInfo>>) -> Result<(), String> {
    let result = match manual {
        Some(list) => conn.execute(
            "INSERT INTO settings(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            rusqlite::params![MANUAL_KEY, serde_json::to_string(list).unwrap_or_default()],
        ),
        None => conn.execute("DELETE FROM settings WHERE key = ?1", [MANUAL_KEY]),
    };
    result.map(|_| ()).map_err(|e| format!("cannot save connectivity: {e}"))
}

/// The connectivity service.
pub struct Connectivity {
    conn: Connection,
    config: IpDetectorConfig,
    manual: Option<Vec<ConnectivityInfo>>,
    broker: SocketAddr,
    current: Vec<ConnectivityInfo>,
    listener: Recipient<ConnectivityChanged>,
}

impl Connectivity {
    /// Keeps its settings in `conn`, starting from the `manual` endpoints loaded from it
    /// ([`load_manual`]); reports to `listener`.
    pub fn new(
        conn: Connection,
        manual: Option<Vec<ConnectivityInfo>>,
        broker: SocketAddr,
        listener: Recipient<ConnectivityChanged>,
    ) -> Self {
        Self { conn, config: IpDetectorConfig::default(), manual, broker, current: Vec::new(), listener }
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
        ConnectivityReport { source: source.to_owned(), entries: self.current.clone() }
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
    type Result = Result<ConnectivityReport, String>;

    fn handle(&mut self, msg: SetManualConnectivity, _ctx: &mut Self::Context) -> Self::Result {
        save_manual(&self.conn, msg.0.as_ref())?;
        self.manual = msg.0;
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
