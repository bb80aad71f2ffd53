//! `watch --metrics ADDR` and `--metrics-file PATH`: where the Prometheus
//! exposition (`report::prometheus`) goes.
//!
//! A [`MetricsSink`] takes watch's events into the exposition (it sits beside the
//! timeline renderer, so the watch loop does not know metrics exist). `--metrics`
//! serves `GET /metrics` from a thread of its own ([`http`]: hyper, every client
//! at once, each bounded in time and size). `--metrics-file`
//! rewrites the textfile from another thread when something changed, at most once
//! a second, atomically (a temporary file in the same directory, fsync, rename), and
//! once more, synchronously, when the watch ends.

mod http;

use std::io::Write;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use hyper::body::Bytes;

use crate::engine::run::RunError;
use crate::model::event::{Event, EventKind, Sink};
use crate::report::prometheus::{Exposition, Limits};

/// Where the exposition goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricsTarget {
    /// `--metrics`: serve `/metrics` over HTTP on this host (resolved at start) and port.
    Serve { host: String, port: u16 },
    /// `--metrics-file`: write node_exporter's textfile format to this path.
    File(PathBuf),
}

/// The textfile is rewritten at most this often.
const FILE_GAP: Duration = Duration::from_secs(1);

struct State {
    exposition: Exposition,
    /// Bumped by every event; the file writer compares it with what it wrote.
    version: u64,
    finished: bool,
    /// The last answer rendered in each format (text, OpenMetrics) and the
    /// version it shows. The exposition is a function of the events alone (no
    /// clock in it), so while no event arrives every scrape (and every request a
    /// hostile client pipelines) shares one rendering instead of encoding and
    /// sorting the registry again under the lock the watch loop also takes.
    rendered: [Option<(u64, Bytes)>; 2],
}

impl State {
    /// The exposition as served: OpenMetrics or the 0.0.4 text format.
    fn rendered(&mut self, openmetrics: bool) -> Bytes {
        let slot = usize::from(openmetrics);
        if let Some((version, body)) = &self.rendered[slot]
            && *version == self.version
        {
            return body.clone();
        }
        let body = Bytes::from(if openmetrics {
            self.exposition.openmetrics()
        } else {
            self.exposition.text()
        });
        self.rendered[slot] = Some((self.version, body.clone()));
        body
    }
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
            rendered: [None, None],
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
            http::spawn(listener, Arc::clone(&shared))
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
        match listen_on(addr) {
            Ok(l) => return Ok(l),
            Err(e) => last = e,
        }
    }
    Err(RunError::socket("serve --metrics on", shown)(last))
}

/// A listening socket whose accept queue holds as many connections as the
/// server serves. std's `TcpListener::bind` queues 128: when hundreds of clients
/// connect at once (hostile ones reconnecting together after the head timeout
/// closed them together), the kernel drops the SYNs that find the queue full,
/// and a scraper among them waits a second for its SYN to be sent again
/// (TcpExtListenDrops counted 6 for 1,000 clients connecting at once with 128).
fn listen_on(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // As std does: a restarted watch can bind while the old one's connections
    // are in TIME-WAIT.
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(http::MAX_CLIENTS).unwrap_or(i32::MAX))?;
    Ok(socket.into())
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
