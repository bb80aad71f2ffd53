//! `explain`'s validated options: the capture's path and the `--conn` filter.

use std::net::IpAddr;
use std::path::PathBuf;

use super::{ConfigError, Format, Timestamps, invalid, validate_timestamps};
use crate::cli::ExplainArgs;
use crate::model::capture::ConnFilter;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExplainConfig {
    pub capture: PathBuf,
    pub conn: Option<ConnFilter>,
    pub format: Format,
    pub quiet: bool,
    pub timestamps: Timestamps,
}

impl ExplainConfig {
    pub fn from_args(args: &ExplainArgs) -> Result<Self, ConfigError> {
        Ok(ExplainConfig {
            capture: validate_capture_path(&args.capture)?,
            conn: args.conn.as_deref().map(validate_conn_filter).transpose()?,
            format: if args.json {
                Format::Json
            } else {
                Format::Human
            },
            quiet: args.quiet,
            timestamps: validate_timestamps(&args.timestamps)?,
        })
    }
}

/// CAPTURE: a path (the file is opened, and judged, when the command runs).
pub fn validate_capture_path(path: &std::path::Path) -> Result<PathBuf, ConfigError> {
    if path.as_os_str().is_empty() {
        return Err(invalid("CAPTURE", "", "must be a file name"));
    }
    Ok(path.to_path_buf())
}

/// `--conn`: a connection number (1-based), or ADDR, ADDR:PORT, [V6]:PORT, :PORT.
pub fn validate_conn_filter(value: &str) -> Result<ConnFilter, ConfigError> {
    const FLAG: &str = "--conn";
    const FORMS: &str = "expected a connection number, ADDR, ADDR:PORT, [IPv6]:PORT or :PORT";
    if value.is_empty() {
        return Err(invalid(FLAG, value, FORMS));
    }
    if value.bytes().all(|b| b.is_ascii_digit()) {
        return match value.parse::<u64>() {
            Ok(n) if n >= 1 => Ok(ConnFilter::Number(n)),
            _ => Err(invalid(FLAG, value, "connections are numbered from 1")),
        };
    }
    let port = |p: &str| {
        p.parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| invalid(FLAG, value, "the port must be 1..65535"))
    };
    if let Ok(ip) = value.parse::<IpAddr>() {
        return Ok(ConnFilter::Endpoint {
            ip: Some(ip),
            port: None,
        });
    }
    if let Some(p) = value.strip_prefix(':') {
        return Ok(ConnFilter::Endpoint {
            ip: None,
            port: Some(port(p)?),
        });
    }
    if let Ok(ip) = value
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        && (value.starts_with('[') == value.ends_with(']'))
    {
        return Ok(ConnFilter::Endpoint {
            ip: Some(ip),
            port: None,
        });
    }
    if let Ok(sa) = value.parse::<std::net::SocketAddr>() {
        return Ok(ConnFilter::Endpoint {
            ip: Some(sa.ip()),
            port: Some(port(&sa.port().to_string())?),
        });
    }
    Err(invalid(FLAG, value, FORMS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conn_filters() {
        let ip = |s: &str| Some(s.parse::<IpAddr>().expect("ip"));
        let rows: [(&str, Result<ConnFilter, &str>); 12] = [
            ("3", Ok(ConnFilter::Number(3))),
            ("0", Err("numbered from 1")),
            ("99999999999999999999", Err("numbered from 1")),
            (
                ":5000",
                Ok(ConnFilter::Endpoint {
                    ip: None,
                    port: Some(5000),
                }),
            ),
            (":0", Err("1..65535")),
            (":x", Err("1..65535")),
            (
                "198.18.0.1",
                Ok(ConnFilter::Endpoint {
                    ip: ip("198.18.0.1"),
                    port: None,
                }),
            ),
            (
                "198.18.0.1:80",
                Ok(ConnFilter::Endpoint {
                    ip: ip("198.18.0.1"),
                    port: Some(80),
                }),
            ),
            (
                "[::1]:80",
                Ok(ConnFilter::Endpoint {
                    ip: ip("::1"),
                    port: Some(80),
                }),
            ),
            (
                "::1",
                Ok(ConnFilter::Endpoint {
                    ip: ip("::1"),
                    port: None,
                }),
            ),
            ("host:80", Err("expected a connection number")),
            ("", Err("expected a connection number")),
        ];
        for (value, want) in rows {
            match (validate_conn_filter(value), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{value}"),
                (Err(e), Err(why)) => {
                    let text = e.to_string();
                    assert!(
                        text.contains("--conn") && text.contains(why),
                        "{value}: {text}"
                    )
                }
                (got, want) => panic!("{value}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn capture_path() {
        assert!(validate_capture_path(std::path::Path::new("")).is_err());
        assert!(validate_capture_path(std::path::Path::new("x.pcap")).is_ok());
    }
}
