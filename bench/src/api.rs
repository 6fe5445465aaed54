//! A minimal client for Turf's management API (HTTP/1.1 over `DIR/turf.sock`), blocking, for
//! setting up benchmarks: adding devices, deploying. One request per connection.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A client for one host's socket.
pub struct Api {
    socket: PathBuf,
}

impl Api {
    /// A client for the host listening on `socket`.
    pub fn new(socket: &Path) -> Self {
        Self { socket: socket.to_path_buf() }
    }

    fn call<T: DeserializeOwned>(&self, method: &str, path: &str, body: Option<&[u8]>) -> Result<T> {
        let mut stream =
            UnixStream::connect(&self.socket).with_context(|| format!("connect {}", self.socket.display()))?;
        let body = body.unwrap_or_default();
        let head = format!(
            "{method} /v1{path} HTTP/1.1\r\nHost: turf\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes())?;
        stream.write_all(body)?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response)?;
        let text = String::from_utf8_lossy(&response);
        let (headers, payload) = text.split_once("\r\n\r\n").context("malformed HTTP response")?;
        let status = headers.split_whitespace().nth(1).unwrap_or("0");
        let payload = if headers.to_ascii_lowercase().contains("transfer-encoding: chunked") {
            dechunk(payload)
        } else {
            payload.to_owned()
        };
        if !status.starts_with('2') {
            bail!("{method} {path}: HTTP {status}: {payload}");
        }
        serde_json::from_str(&payload).with_context(|| format!("{method} {path}: unreadable reply {payload}"))
    }

    /// `GET path`.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.call("GET", path, None)
    }

    /// `POST path` with a JSON body.
    pub fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        let body = serde_json::to_vec(body)?;
        self.call("POST", path, Some(&body))
    }
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || after.len() < size {
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_are_joined() {
        assert_eq!(dechunk("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"), "hello world");
        assert_eq!(dechunk("zz\r\n"), "");
    }
}
