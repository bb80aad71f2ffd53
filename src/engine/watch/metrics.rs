//! `watch --metrics ADDR` and `--metrics-file PATH`: where the Prometheus
//! exposition (`report::prometheus`) goes.
//!
//! A [`MetricsSink`] takes watch's events into the exposition (it sits beside the
//! timeline renderer, so the watch loop does not know metrics exist). `--metrics`
//! serves `GET /metrics` from one thread: one request per connection, each with
//! short read and write timeouts so a stuck client cannot hold it. `--metrics-file`
//! rewrites the textfile from another thread when something changed, at most once
//! a second, atomically (a temporary file in the same directory, fsync, rename), and
//! once more, synchronously, when the watch ends.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::engine::run::RunError;
use crate::model::event::{Event, EventKind, Sink};
use crate::report::prometheus::{Exposition, Limits, OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE};

/// Where the exposition goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricsTarget {
    /// `--metrics`: serve `/metrics` over HTTP on this host (resolved at start) and port.
    Serve { host: String, port: u16 },
    /// `--metrics-file`: write node_exporter's textfile format to this path.
    File(PathBuf),
}

/// How long a scrape may take to send its request or read the answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest request head read (a scrape's is a few hundred bytes).
const MAX_REQUEST: usize = 8192;
/// The textfile is rewritten at most this often.
const FILE_GAP: Duration = Duration::from_secs(1);

struct State {
    exposition: Exposition,
    /// Bumped by every event; the file writer compares it with what it wrote.
    version: u64,
    finished: bool,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    /// Serialises textfile writes (the writer thread and the final write).
    file: Mutex<()>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere cannot leave the counters half-updated in a way that
        // matters more than stopping the exporter would.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Feeds the exposition with the watch's events.
pub struct MetricsSink {
    shared: Arc<Shared>,
    file: Option<PathBuf>,
}

impl Sink for MetricsSink {
    fn emit(&mut self, event: &Event) -> std::io::Result<()> {
        let run_ended = matches!(event.kind, EventKind::End(_)) && event.conn == 0;
        {
            let mut state = self.shared.lock();
            state.exposition.observe(event);
            state.version += 1;
            state.finished |= run_ended;
        }
        self.shared.changed.notify_all();
        if run_ended && let Some(path) = &self.file {
            // The last state is written before the process exits. The end has
            // already been rendered with its exit code, so a file that cannot be
            // written is said on stderr (naming the file and why) and changes
            // nothing else: the exit code stays the one the end line gives.
            if let Err(e) = write_textfile(&self.shared, path) {
                crate::report::diagnostic(&format!(
                    "cannot write --metrics-file {}: {e}",
                    path.display()
                ));
            }
        }
        Ok(())
    }
}

/// Starts serving or writing the metrics; the sink to give watch's events to.
pub fn start(target: &MetricsTarget) -> Result<MetricsSink, RunError> {
    let limits = Limits {
        ephemeral: crate::sys::sysctl::local_port_range(),
        ..Limits::default()
    };
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            exposition: Exposition::new(limits),
            version: 0,
            finished: false,
        }),
        changed: Condvar::new(),
        file: Mutex::new(()),
    });
    match target {
        MetricsTarget::Serve { host, port } => {
            let listener = bind(host, *port)?;
            let local = listener
                .local_addr()
                .map_err(RunError::socket("serve --metrics on", shown(host, *port)))?;
            crate::report::diagnostic(&format!(
                "serving Prometheus metrics on http://{local}/metrics"
            ));
            let server = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("metrics-http".into())
                .spawn(move || serve(listener, &server))
                .map_err(RunError::io("start the --metrics server"))?;
            Ok(MetricsSink { shared, file: None })
        }
        MetricsTarget::File(path) => {
            // The first write says at once whether the path can be written.
            write_textfile(&shared, path)
                .map_err(RunError::socket("write --metrics-file", path.display()))?;
            let writer = Arc::clone(&shared);
            let file = path.clone();
            std::thread::Builder::new()
                .name("metrics-file".into())
                .spawn(move || write_on_change(&writer, &file))
                .map_err(RunError::io("start the --metrics-file writer"))?;
            Ok(MetricsSink {
                shared,
                file: Some(path.clone()),
            })
        }
    }
}

/// `host:port` as the user would write it (an IPv6 host in brackets).
fn shown(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn bind(host: &str, port: u16) -> Result<TcpListener, RunError> {
    let shown = shown(host, port);
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(RunError::socket("resolve --metrics", &shown))?
        .collect();
    let mut last = std::io::Error::new(std::io::ErrorKind::AddrNotAvailable, "no address");
    for addr in addrs {
        match TcpListener::bind(addr) {
            Ok(l) => return Ok(l),
            Err(e) => last = e,
        }
    }
    Err(RunError::socket("serve --metrics on", shown)(last))
}

fn serve(listener: TcpListener, shared: &Shared) {
    for stream in listener.incoming() {
        // A failed accept (a client that reset at once, no descriptors left for a
        // moment) concerns that client only.
        let Ok(stream) = stream else {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        let _ = answer(stream, shared);
    }
}

/// Reads one request head and answers it; the connection is closed after.
fn answer(mut stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > MAX_REQUEST {
            return respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                TEXT_CONTENT_TYPE,
                b"",
            );
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head);
    let request = parse_request(&head);
    match (request.method, request.path) {
        ("GET" | "HEAD", "/metrics") => {
            let (body, content_type) = {
                let state = shared.lock();
                if request.openmetrics {
                    (state.exposition.openmetrics(), OPENMETRICS_CONTENT_TYPE)
                } else {
                    (state.exposition.text(), TEXT_CONTENT_TYPE)
                }
            };
            if request.method == "HEAD" {
                // The head a GET would get, without the body.
                return stream
                    .write_all(response_head("200 OK", content_type, body.len()).as_bytes());
            }
            respond(&mut stream, "200 OK", content_type, body.as_bytes())
        }
        ("GET" | "HEAD", "/") => respond(
            &mut stream,
            "200 OK",
            "text/plain; charset=utf-8",
            b"tcpalive watch: metrics at /metrics\n",
        ),
        ("GET" | "HEAD", _) => respond(&mut stream, "404 Not Found", "text/plain", b"not found\n"),
        _ => respond(
            &mut stream,
            "405 Method Not Allowed",
            "text/plain",
            b"only GET\n",
        ),
    }
}

/// The parts of a request head the exporter uses.
#[derive(Debug, PartialEq, Eq)]
struct Request<'a> {
    method: &'a str,
    path: &'a str,
    /// The client accepts OpenMetrics (Prometheus does, first).
    openmetrics: bool,
}

fn parse_request(head: &str) -> Request<'_> {
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("");
    let target = first.next().unwrap_or("");
    let path = target.split('?').next().unwrap_or("");
    let openmetrics = lines.any(|l| {
        l.split_once(':').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("accept")
                && value.contains("application/openmetrics-text")
        })
    });
    Request {
        method,
        path,
        openmetrics,
    }
}

fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &[u8],
) -> std::io::Result<()> {
    stream.write_all(response_head(status, content_type, body.len()).as_bytes())?;
    stream.write_all(body)?;
    stream.flush()
}

fn response_head(status: &str, content_type: &str, length: usize) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\n\
         Connection: close\r\n\r\n"
    )
}

fn write_on_change(shared: &Shared, path: &Path) {
    let mut written = 0;
    let mut last_error: Option<String> = None;
    loop {
        {
            let mut state = shared.lock();
            while state.version == written && !state.finished {
                state = shared
                    .changed
                    .wait(state)
                    .unwrap_or_else(|p| p.into_inner());
            }
            if state.finished {
                // The sink writes the final state itself.
                return;
            }
            written = state.version;
        }
        // Said once per new reason, not once a second while it lasts.
        match write_textfile(shared, path) {
            Err(e) if last_error.as_deref() != Some(e.to_string().as_str()) => {
                crate::report::diagnostic(&format!(
                    "cannot write --metrics-file {}: {e}",
                    path.display()
                ));
                last_error = Some(e.to_string());
            }
            Err(_) => {}
            Ok(()) => last_error = None,
        }
        std::thread::sleep(FILE_GAP);
    }
}

/// Writes the textfile so that a reader sees the old file or the new one, never a
/// part: a hidden temporary file in the same directory (node_exporter reads only
/// `*.prom`), fsync, rename.
///
/// The path is attack surface when watch runs as root in a directory others can
/// write. The temporary file gets a random name and is created with
/// `O_CREAT|O_EXCL` (the `tempfile` crate), which never follows a symlink planted
/// at that name and never opens an existing FIFO (so never blocks); the final
/// path is never opened at all, only replaced by `rename(2)`, which replaces a
/// link rather than writing through it. A final path that exists and is not a
/// regular file (a symlink, a FIFO, a directory) is refused, so tcpalive replaces
/// only what it could have written itself.
fn write_textfile(shared: &Shared, path: &Path) -> std::io::Result<()> {
    // Rendered under the file lock, so that files are written in the order their
    // contents were rendered: the final state is never overwritten by an older one.
    let _one_writer = shared.file.lock().unwrap_or_else(|p| p.into_inner());
    let text = shared.lock().exposition.text();
    refuse_non_regular(path)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // Readable by a node_exporter running as another user, as a textfile must be.
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .permissions(std::fs::Permissions::from_mode(0o644))
        .tempfile_in(dir)?;
    tmp.write_all(text.as_bytes())?;
    tmp.as_file().sync_all()?;
    // On failure the temporary file is removed when `tmp` (or the error holding
    // it) is dropped.
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// An existing `--metrics-file` must be a regular file (`lstat`, not following a
/// link); a missing one is created by the rename.
fn refuse_non_regular(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_file() => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "it exists and is {}, not a regular file (tcpalive replaces only regular files)",
                file_kind(&meta.file_type())
            ),
        )),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn file_kind(t: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_symlink() {
        "a symbolic link"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_block_device() || t.is_char_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_read_for_method_path_and_format() {
        let prometheus = "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: \
             application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5\r\n\r\n";
        assert_eq!(
            parse_request(prometheus),
            Request {
                method: "GET",
                path: "/metrics",
                openmetrics: true
            }
        );
        let curl = "GET /metrics?x=1 HTTP/1.1\r\nHost: x\r\naccept: */*\r\n\r\n";
        assert_eq!(
            parse_request(curl),
            Request {
                method: "GET",
                path: "/metrics",
                openmetrics: false
            }
        );
        assert_eq!(parse_request("").method, "");
    }
}
