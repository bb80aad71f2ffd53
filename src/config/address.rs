//! Addresses on the command line: `connect`'s HOST:PORT, `listen`'s [HOST:]PORT,
//! and the sockets `watch` and `tune` select by --port, --peer and --pid. Hosts
//! are resolved later, by the command.

use super::keepalive::validate_count;
use super::{ConfigError, invalid};
use crate::sys;

/// A peer or bind address as given: the host is resolved later, by the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}
/// `watch --peer`: a host (resolved later, by the command) and maybe a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerFilter {
    pub host: String,
    pub port: Option<u16>,
}

/// `watch --port`: 1..=65535 (no connection has port 0).
pub fn validate_watch_port(value: &str) -> Result<u16, ConfigError> {
    validate_port("--port", value, value, false)
}

/// Linux's largest PID: PID_MAX_LIMIT (4194304 on 64-bit) is one past it.
pub const MAX_PID: u64 = 4_194_303;

/// `--pid`: a process that exists now (watching a PID that is not there would
/// watch nothing, silently).
pub fn validate_pid(value: &str) -> Result<u32, ConfigError> {
    let pid = validate_count("--pid", value, 1, MAX_PID)? as u32;
    if !sys::process_exists(pid) {
        return Err(invalid("--pid", value, "no such process"));
    }
    Ok(pid)
}

/// `watch --peer`: `HOST`, `HOST:PORT`, `[IPv6]:PORT`, or a bare IPv6 address.
pub fn validate_peer_filter(value: &str) -> Result<PeerFilter, ConfigError> {
    const FLAG: &str = "--peer";
    if value.is_empty() {
        return Err(invalid(
            FLAG,
            value,
            "missing host (expected HOST or HOST:PORT)",
        ));
    }
    if value.starts_with('[') {
        if !value.contains("]:") {
            let host = value
                .strip_prefix('[')
                .and_then(|v| v.strip_suffix(']'))
                .ok_or_else(|| invalid(FLAG, value, "missing ']' after the IPv6 address"))?;
            validate_ipv6(FLAG, value, host)?;
            return Ok(PeerFilter {
                host: host.to_string(),
                port: None,
            });
        }
        let e = validate_endpoint(FLAG, value, false)?;
        return Ok(PeerFilter {
            host: e.host,
            port: Some(e.port),
        });
    }
    match value.matches(':').count() {
        0 => {
            validate_host(FLAG, value, value)?;
            Ok(PeerFilter {
                host: value.to_string(),
                port: None,
            })
        }
        // More than one colon: a bare IPv6 address, no port.
        2.. => {
            validate_ipv6(FLAG, value, value)?;
            Ok(PeerFilter {
                host: value.to_string(),
                port: None,
            })
        }
        _ => {
            let e = validate_endpoint(FLAG, value, false)?;
            Ok(PeerFilter {
                host: e.host,
                port: Some(e.port),
            })
        }
    }
}

/// An IPv6 address (with an optional zone), as brackets or many colons promise.
fn validate_ipv6(flag: &'static str, value: &str, host: &str) -> Result<(), ConfigError> {
    let (addr, zone) = match host.split_once('%') {
        Some((a, z)) => (a, Some(z)),
        None => (host, None),
    };
    if addr.parse::<std::net::Ipv6Addr>().is_err() {
        return Err(invalid(
            flag,
            value,
            format!("'{host}' is not an IPv6 address"),
        ));
    }
    match zone {
        Some(z) => validate_zone(flag, value, z),
        None => Ok(()),
    }
}

/// `HOST:PORT` or `[IPv6]:PORT`. Port 0 is accepted only where the kernel picks one.
pub fn validate_endpoint(
    flag: &'static str,
    value: &str,
    allow_port_zero: bool,
) -> Result<Endpoint, ConfigError> {
    let (host, port) = if let Some(rest) = value.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| invalid(flag, value, "missing ']' after the IPv6 address"))?;
        let port = after
            .strip_prefix(':')
            .ok_or_else(|| invalid(flag, value, "missing port (expected [IPv6]:PORT)"))?;
        if !host.is_empty() {
            validate_ipv6(flag, value, host)?;
        }
        (host, port)
    } else {
        let (host, port) = value
            .rsplit_once(':')
            .ok_or_else(|| invalid(flag, value, "missing port (expected HOST:PORT)"))?;
        if host.contains(':') {
            return Err(invalid(
                flag,
                value,
                "IPv6 address needs brackets, as in [::1]:7000",
            ));
        }
        (host, port)
    };
    if host.is_empty() {
        return Err(invalid(flag, value, "missing host (expected HOST:PORT)"));
    }
    if !value.starts_with('[') {
        validate_host(flag, value, host)?;
    }
    let port = validate_port(flag, value, port, allow_port_zero)?;
    Ok(Endpoint {
        host: host.to_string(),
        port,
    })
}

/// `listen` takes `[HOST:]PORT`; a bare port binds all IPv4 interfaces.
pub fn validate_listen_addr(value: &str) -> Result<Endpoint, ConfigError> {
    const FLAG: &str = "[HOST:]PORT";
    let trimmed = value.trim();
    if !trimmed.is_empty() && trimmed.chars().all(|c| c.is_ascii_digit()) {
        let port = validate_port(FLAG, value, value, true)?;
        return Ok(Endpoint {
            host: "0.0.0.0".to_string(),
            port,
        });
    }
    validate_endpoint(FLAG, value, true)
}

pub fn validate_port(
    flag: &'static str,
    value: &str,
    port: &str,
    allow_zero: bool,
) -> Result<u16, ConfigError> {
    if port.is_empty() {
        return Err(invalid(flag, value, "missing port (expected HOST:PORT)"));
    }
    // Digits only: `u64::from_str` would take "+80", and a space is no port.
    let n: u64 = port
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| port.parse().ok())
        .flatten()
        .ok_or_else(|| invalid(flag, value, format!("port '{port}' is not a number")))?;
    let min = if allow_zero { 0 } else { 1 };
    if n < min || n > 65535 {
        return Err(invalid(
            flag,
            value,
            format!("port {n} is out of range {min}..=65535"),
        ));
    }
    Ok(n as u16)
}

/// The longest host name DNS can carry (RFC 1035 2.3.4: 255 octets on the wire).
const MAX_HOST_NAME: usize = 253;

/// A host that can be resolved: an IP address, or a host name of letters, digits,
/// '-', '_' and '.', in labels of at most 63 characters, that is not an almost-IPv4
/// address (`1.2.3.4.5`). Anything else could never resolve, so it is a usage
/// error now rather than a connect failure later.
pub fn validate_host(flag: &'static str, value: &str, host: &str) -> Result<(), ConfigError> {
    if host.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    if host.len() > MAX_HOST_NAME {
        return Err(invalid(
            flag,
            &shorten(value),
            format!("host name longer than {MAX_HOST_NAME} characters"),
        ));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if let Some(c) = host.chars().find(|&c| !allowed(c)) {
        return Err(invalid(
            flag,
            value,
            format!(
                "'{host}' is not a host name ({} is not a letter, digit, '-', '_' or '.')",
                c.escape_default()
            ),
        ));
    }
    let labels = host.strip_suffix('.').unwrap_or(host);
    if labels.split('.').any(|l| l.is_empty() || l.len() > 63) {
        return Err(invalid(
            flag,
            value,
            format!("'{host}' is not a host name (empty or over-long label)"),
        ));
    }
    if labels.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(invalid(
            flag,
            value,
            format!("'{host}' is not an IPv4 address"),
        ));
    }
    Ok(())
}

/// An IPv6 zone (`fe80::1%eth0`): a number, or an interface this host has.
fn validate_zone(flag: &'static str, value: &str, zone: &str) -> Result<(), ConfigError> {
    if zone.bytes().all(|b| b.is_ascii_digit()) && !zone.is_empty() {
        return Ok(());
    }
    if sys::interface_index(zone).is_none() {
        return Err(invalid(
            flag,
            value,
            format!("no network interface '{zone}' for the IPv6 zone"),
        ));
    }
    Ok(())
}

/// Very long values are cut in messages, so the one line stays one line.
fn shorten(value: &str) -> String {
    const KEEP: usize = 60;
    match value.char_indices().nth(KEEP) {
        Some((i, _)) => format!("{}...", &value[..i]),
        None => value.to_string(),
    }
}
