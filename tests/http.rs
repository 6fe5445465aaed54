//! The console's side of the HTTP listener for tests: a logged-in session (cookie and key), and a
//! live server-sent-events stream read off a raw socket.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{TIMEOUT, TestHost, http_get, with_timeout};

/// The values of the header `name` (in any case) in a reply's head.
fn header_values<'a>(head: &'a str, name: &'a str) -> impl Iterator<Item = &'a str> {
    head.lines().filter_map(move |line| {
        let (header, value) = line.split_once(':')?;
        header.eq_ignore_ascii_case(name).then_some(value.trim())
    })
}

/// The `turf_console=...` cookie a login reply sets.
pub fn session_cookie(head: &str) -> Option<String> {
    header_values(head, "set-cookie")
        .find(|c| c.starts_with("turf_console="))
        .map(|c| c.split(';').next().unwrap_or_default().to_owned())
}

/// A login link from `turf console`.
pub fn login_link(host: &TestHost) -> Result<String> {
    let printed = host.turf_ok(&["console"])?;
    Ok(printed.split_whitespace().find(|w| w.starts_with("http")).context("no login link")?.to_owned())
}

/// The session key a login reply hands the page (`location: /#key=...`).
pub fn session_key(head: &str) -> Option<String> {
    header_values(head, "location").find_map(|l| l.strip_prefix("/#key=")).map(str::to_owned)
}

/// A console session: the cookie (`turf_console=...`) and the key the page sends with it.
pub struct ConsoleSession {
    /// The `Cookie` header's value.
    pub cookie: String,
    /// The `x-turf-key` header's value.
    pub key: String,
}

impl ConsoleSession {
    /// The headers an API request of this session carries.
    pub fn headers(&self) -> [(&str, &str); 2] {
        [("Cookie", self.cookie.as_str()), ("x-turf-key", self.key.as_str())]
    }
}

/// Logs in with a fresh `turf console` link.
pub async fn console_session(host: &TestHost) -> Result<ConsoleSession> {
    let url = login_link(host)?;
    let path = url.split_once(&host.endpoints.http.to_string()).context("a login link to another address")?.1;
    let (status, head, body) = http_get(host.endpoints.http, path).await?;
    anyhow::ensure!(status == 303, "login answered {status}: {body}");
    let cookie = session_cookie(&head).context("no session cookie")?;
    Ok(ConsoleSession { cookie, key: session_key(&head).context("no session key")? })
}

/// A server-sent-events response being read.
pub struct EventStream {
    socket: TcpStream,
    buffer: String,
}

impl EventStream {
    /// `GET path` in `session` (its key in the query, as a browser's `EventSource` sends it);
    /// the status, and the stream when it is 200.
    pub async fn open(addr: SocketAddr, path: &str, session: &ConsoleSession) -> Result<(u16, Option<Self>)> {
        let mut socket = with_timeout(TIMEOUT, "connecting to the HTTP listener", TcpStream::connect(addr)).await??;
        let (cookie, key) = (&session.cookie, &session.key);
        let request =
            format!("GET {path}&key={key} HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n");
        socket.write_all(request.as_bytes()).await?;
        let mut stream = Self { socket, buffer: String::new() };
        while !stream.buffer.contains("\r\n\r\n") {
            if !stream.read_more(TIMEOUT).await? {
                bail!("the connection closed before the reply's head: {:?}", stream.buffer);
            }
        }
        let status: u16 = stream.buffer.split_whitespace().nth(1).context("no status")?.parse()?;
        Ok((status, (status == 200).then_some(stream)))
    }

    async fn read_more(&mut self, timeout: Duration) -> Result<bool> {
        let mut chunk = [0u8; 8192];
        let read = with_timeout(timeout, "server-sent events", self.socket.read(&mut chunk)).await??;
        self.buffer.push_str(&String::from_utf8_lossy(&chunk[..read]));
        Ok(read > 0)
    }

    /// Whether the server ends the stream within `timeout` (whatever it sends meanwhile).
    pub async fn closed_within(&mut self, timeout: Duration) -> Result<bool> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            match self.read_more(left).await {
                Ok(false) => return Ok(true),
                Ok(true) => self.buffer.clear(),
                Err(_) => return Ok(false),
            }
        }
    }

    /// The next event's data (JSON), waiting at most `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Result<serde_json::Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(start) = self.buffer.find("\ndata: ") {
                let rest = &self.buffer[start + "\ndata: ".len()..];
                if let Some(end) = rest.find('\n') {
                    let data = rest[..end].to_owned();
                    self.buffer = rest[end..].to_owned();
                    return Ok(serde_json::from_str(&data)?);
                }
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() || !self.read_more(left).await? {
                bail!("no event within {timeout:?}");
            }
        }
    }
}
