//! `watch --metrics`: the HTTP server, hyper's HTTP/1.1 on a current-thread
//! tokio runtime in a thread of its own (the watch loop never waits for it).
//!
//! hyper does the framing (keep-alive, pipelining, bare-LF heads, absolute-form
//! targets, 431 for a head too large); this module adds what a server facing
//! hostile clients also needs, each bounded:
//! - every client is served at once (one task each), so a silent or slow one
//!   holds only itself;
//! - a request head must arrive within [`HEAD_TIMEOUT`] (slowloris, silent
//!   connections) and fit in [`MAX_HEAD`] bytes;
//! - at most [`MAX_CLIENTS`] connections: one more, or no descriptor left for
//!   `accept`, closes the oldest, so a scraper arriving late always gets in;
//! - a connection lives at most [`LIFETIME`], then is closed after its current
//!   answer (a client that never reads its answer is bounded too);
//! - a connection is closed the way nginx's "lingering close" does: write side
//!   shut, what the client still sends read and dropped for a moment, so an
//!   error answer (the 431) reaches a client still sending instead of being
//!   destroyed by the reset that closing with unread data sends.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{ACCEPT, ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use super::Shared;
use crate::report::prometheus::{OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE};

/// Connections served at once; one more closes the oldest.
pub const MAX_CLIENTS: usize = 1024;
/// How long a request head may take to arrive, counted from the connection (or
/// the previous answer on a kept-alive one).
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest request head read (hyper's smallest buffer limit; a scrape's head
/// is a few hundred bytes). A longer one is answered 431.
pub const MAX_HEAD: usize = 8192;
/// The longest a connection is kept, kept-alive scrapes included.
pub const LIFETIME: Duration = Duration::from_secs(60);
/// After [`LIFETIME`], how long the current answer may still take.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// Lingering close: how long, and how much, of what a client still sends is
/// read and dropped before the connection is closed.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 1 << 20;
/// Requests one connection may have answered back to back, and how many more a
/// second after that. A scraper asks once per scrape interval; a client
/// pipelining hundreds of requests it never reads made the server write one
/// answer per request through the whole loopback TCP stack (73 % of its CPU in
/// `sendto`, 140 ms in one burst for 1,000 such clients, during which a scrape
/// waited). Beyond the burst its requests are answered at this pace, each still
/// answered, and the connection is closed at [`LIFETIME`] as any other.
const REQUEST_BURST: u32 = 10;
const REQUESTS_PER_SECOND: u32 = 2;
/// Pause after a failed `accept` (a client that reset at once, no descriptor).
const ACCEPT_PAUSE: Duration = Duration::from_millis(10);

/// Serves `/metrics` from `listener` in a new thread until the process exits.
pub fn spawn(listener: std::net::TcpListener, shared: Arc<Shared>) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    std::thread::Builder::new()
        .name("metrics-http".into())
        .spawn(move || runtime.block_on(serve(listener, shared)))?;
    Ok(())
}

async fn serve(listener: std::net::TcpListener, shared: Arc<Shared>) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            crate::report::diagnostic(&format!("cannot serve --metrics: {e}"));
            return;
        }
    };
    let clients = Arc::new(Clients::default());
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                if clients.make_room(MAX_CLIENTS - 1) > 0 {
                    // An aborted task closes its connection when the runtime
                    // next runs it; let it, before accepting more, so that the
                    // descriptors held never exceed the cap (without this, a
                    // burst of accepts went 15 past it before yielding).
                    tokio::task::yield_now().await;
                }
                let id = clients.next_id();
                let guard = Registered {
                    clients: Arc::clone(&clients),
                    id,
                };
                let task = tokio::spawn(connection(stream, Arc::clone(&shared), guard));
                // The runtime has one thread and this loop has not yielded since
                // the spawn, so the task cannot have ended (and unregistered)
                // before it is registered.
                clients.insert(id, task.abort_handle());
            }
            Err(e) => {
                if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
                    clients.make_room(clients.len().saturating_sub(1));
                }
                tokio::time::sleep(ACCEPT_PAUSE).await;
            }
        }
    }
}

/// The connections being served, oldest first (ids only grow).
#[derive(Default)]
struct Clients {
    live: Mutex<BTreeMap<u64, tokio::task::AbortHandle>>,
    next: std::sync::atomic::AtomicU64,
}

impl Clients {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, tokio::task::AbortHandle>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn next_id(&self) -> u64 {
        self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    fn len(&self) -> usize {
        self.lock().len()
    }

    fn insert(&self, id: u64, task: tokio::task::AbortHandle) {
        self.lock().insert(id, task);
    }

    /// Closes the oldest connections until at most `keep` are left; how many.
    fn make_room(&self, keep: usize) -> usize {
        let mut live = self.lock();
        let mut closed = 0;
        while live.len() > keep {
            let Some((_, oldest)) = live.pop_first() else {
                break;
            };
            oldest.abort();
            closed += 1;
        }
        closed
    }
}

/// Unregisters a connection when its task ends or is aborted.
struct Registered {
    clients: Arc<Clients>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.clients.lock().remove(&self.id);
    }
}

async fn connection(stream: TcpStream, shared: Arc<Shared>, _registered: Registered) {
    let _ = stream.set_nodelay(true);
    let slot = Arc::new(Mutex::new(None));
    let io = TokioIo::new(Handback {
        stream: Some(stream),
        slot: Arc::clone(&slot),
    });
    let pace = Pace::new(Instant::now());
    let service = hyper::service::service_fn(move |req| {
        let wait = pace.wait(Instant::now());
        let shared = Arc::clone(&shared);
        async move {
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            Ok::<_, Infallible>(respond(&req, &shared))
        }
    });
    let mut conn = Box::pin(
        hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEAD_TIMEOUT)
            .max_buf_size(MAX_HEAD)
            .serve_connection(io, service),
    );
    if tokio::time::timeout(LIFETIME, conn.as_mut()).await.is_err() {
        conn.as_mut().graceful_shutdown();
        let _ = tokio::time::timeout(CLOSE_GRACE, conn.as_mut()).await;
    }
    // Dropping hyper's connection hands the stream back for the lingering close.
    drop(conn);
    let stream = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(stream) = stream {
        linger(stream).await;
    }
}

/// A token bucket of requests for one connection: [`REQUEST_BURST`] at once,
/// then [`REQUESTS_PER_SECOND`].
struct Pace {
    /// When the connection's bucket will be full again, had no request come
    /// since; a request takes one token (`1 / REQUESTS_PER_SECOND` of time).
    full_at: Cell<Instant>,
}

impl Pace {
    const TOKEN: Duration = Duration::from_millis(1000 / REQUESTS_PER_SECOND as u64);

    fn new(now: Instant) -> Pace {
        Pace {
            full_at: Cell::new(now),
        }
    }

    /// How long the request arriving `now` waits before it is answered.
    fn wait(&self, now: Instant) -> Duration {
        let depth = Self::TOKEN.saturating_mul(REQUEST_BURST);
        // An idle connection's bucket fills up to the burst, no further.
        let full_at = self.full_at.get().max(now);
        let next = full_at + Self::TOKEN;
        self.full_at.set(next);
        next.saturating_duration_since(now + depth)
    }
}

/// Shuts the write side (the answer is complete) and drops what the client still
/// sends, for at most [`LINGER`] and [`LINGER_BYTES`], so the close that follows
/// sends a FIN rather than a reset that would destroy the answer in flight.
async fn linger(mut stream: TcpStream) {
    let _ = stream.shutdown().await;
    let drain = async {
        // On the heap, and only now: an array here would be part of every
        // connection's task (the future is as large as its largest state) for
        // its whole life, 16 KiB for each of up to MAX_CLIENTS silent clients.
        let mut buf = vec![0u8; 16 * 1024];
        let mut left = LINGER_BYTES;
        while left > 0 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// The stream hyper reads and writes; when hyper drops it, the stream is put in
/// `slot` instead of being closed.
struct Handback {
    stream: Option<TcpStream>,
    slot: Arc<Mutex<Option<TcpStream>>>,
}

impl Handback {
    fn stream(&mut self) -> io::Result<Pin<&mut TcpStream>> {
        match self.stream.as_mut() {
            Some(s) => Ok(Pin::new(s)),
            None => Err(io::Error::from(io::ErrorKind::NotConnected)),
        }
    }
}

impl Drop for Handback {
    fn drop(&mut self) {
        if let Some(stream) = self.stream.take() {
            *self.slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(stream);
        }
    }
}

impl AsyncRead for Handback {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(s) => s.poll_read(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncWrite for Handback {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().stream() {
            Ok(s) => s.poll_write(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(s) => s.poll_flush(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(s) => s.poll_shutdown(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

/// The answer to one request: `/metrics` in the format the client prefers,
/// `/` a pointer to it, 404 elsewhere, 405 for methods other than GET and HEAD
/// (hyper sends HEAD the head a GET would get, without the body).
fn respond(req: &Request<Incoming>, shared: &Shared) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    // An absolute-form target (`GET http://host/metrics`) has the same path.
    match req.uri().path() {
        "/metrics" => {
            let openmetrics = req
                .headers()
                .get_all(ACCEPT)
                .iter()
                .any(|v| wants_openmetrics(v.as_bytes()));
            let body = shared.lock().rendered(openmetrics);
            let content_type = if openmetrics {
                OPENMETRICS_CONTENT_TYPE
            } else {
                TEXT_CONTENT_TYPE
            };
            with_type(StatusCode::OK, content_type, body)
        }
        "/" => plain(StatusCode::OK, "tcpalive watch: metrics at /metrics\n"),
        _ => plain(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// The client accepts OpenMetrics (Prometheus does, first).
fn wants_openmetrics(accept: &[u8]) -> bool {
    const NAME: &[u8] = b"application/openmetrics-text";
    accept
        .windows(NAME.len())
        .any(|w| w.eq_ignore_ascii_case(NAME))
}

fn plain(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    with_type(
        status,
        "text/plain; charset=utf-8",
        Bytes::from_static(body.as_bytes()),
    )
}

fn with_type(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_gets_its_burst_at_once_then_the_pace() {
        let t0 = Instant::now();
        let pace = Pace::new(t0);
        for i in 0..REQUEST_BURST {
            assert_eq!(pace.wait(t0), Duration::ZERO, "request {i}");
        }
        assert_eq!(pace.wait(t0), Pace::TOKEN);
        assert_eq!(pace.wait(t0), Pace::TOKEN * 2);
        // Idle for long, the bucket is full again, and no fuller than the burst.
        let later = t0 + Duration::from_secs(3600);
        for i in 0..REQUEST_BURST {
            assert_eq!(pace.wait(later), Duration::ZERO, "request {i} after idling");
        }
        assert_eq!(pace.wait(later), Pace::TOKEN);
        // One request a scrape interval never waits.
        let pace = Pace::new(t0);
        for i in 1..100u32 {
            assert_eq!(pace.wait(t0 + Pace::TOKEN * i), Duration::ZERO);
        }
    }

    #[test]
    fn openmetrics_is_chosen_from_the_accept_header() {
        assert!(wants_openmetrics(
            b"application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
        ));
        assert!(wants_openmetrics(b"Application/OpenMetrics-Text"));
        assert!(!wants_openmetrics(b"*/*"));
        assert!(!wants_openmetrics(b"text/plain"));
    }
}
