//! `HOST:PORT` as people write it: the manual connectivity list, `turf client --core`, the
//! upstream endpoint. A leaf: parsing only, talks to nobody.

/// A host name or address and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// Port, never 0.
    pub port: u16,
}

/// Why a `HOST:PORT` was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointError {
    /// What was written.
    pub text: String,
    /// What is wrong with it.
    pub problem: String,
}

/// Parses `HOST:PORT` or `HOST` (then `default_port`; without one the port is required). IPv6
/// hosts in brackets.
pub fn parse(text: &str, default_port: Option<u16>) -> Result<HostPort, EndpointError> {
    let err = |problem: &str| EndpointError { text: text.to_owned(), problem: problem.to_owned() };
    let default_port = || default_port.ok_or_else(|| err("expected HOST:PORT"));
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(|| err("unclosed '['"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| err("bad port"))?,
            None if after.is_empty() => default_port()?,
            None => return Err(err("expected :PORT after ']'")),
        };
        (host.to_owned(), port)
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') => (host.to_owned(), port.parse().map_err(|_| err("bad port"))?),
            Some(_) => return Err(err("write IPv6 addresses in brackets, e.g. [fe80::1]:8883")),
            None => (text.to_owned(), default_port()?),
        }
    };
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c == '/') {
        return Err(err("not a host name or address"));
    }
    if port == 0 {
        return Err(err("port 0 is not reachable"));
    }
    Ok(HostPort { host, port })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(host: &str, port: u16) -> Result<HostPort, EndpointError> {
        Ok(HostPort { host: host.to_owned(), port })
    }

    #[test]
    fn hosts_ports_and_bracketed_ipv6_parse() {
        assert_eq!(parse("core.local:8883", Some(1)), ok("core.local", 8883));
        assert_eq!(parse("10.0.0.2", Some(8883)), ok("10.0.0.2", 8883));
        assert_eq!(parse("[fe80::1]:1883", None), ok("fe80::1", 1883));
        assert_eq!(parse("[fe80::1]", Some(8883)), ok("fe80::1", 8883));
    }

    #[test]
    fn hostile_endpoints_are_refused_with_the_reason() {
        for (text, problem) in [
            ("core.local", "expected HOST:PORT"),
            ("fe80::1:8883", "brackets"),
            ("[fe80::1", "unclosed"),
            ("[fe80::1]x", "expected :PORT"),
            ("host:0", "port 0"),
            ("host:99999", "bad port"),
            (":8883", "not a host"),
            ("a b:1", "not a host"),
            ("a/b:1", "not a host"),
        ] {
            let error = parse(text, None).unwrap_err();
            assert!(error.problem.contains(problem), "{text}: {}", error.problem);
        }
    }
}
