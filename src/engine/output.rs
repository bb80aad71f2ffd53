//! stdout that never blocks the event loop. A reader that stops reading (a pipe
//! nobody drains) used to stop `listen` in write(2): nothing served, signals
//! unanswered. The renderers now write into [`Stdout`], whose flushed chunks (one
//! event each) go to a queue that a writer thread drains into the real stdout.
//! The queue holds at most [`MAX_QUEUED`] bytes; beyond that events are dropped
//! and counted, and the reporter says how many once the queue has room again
//! ([`take_dropped`]). The latest `end` (with the warning before it) is kept
//! aside when the queue is full and goes out first when there is room or at
//! exit ([`must_deliver`]), so the last line is always the run's `end`. At exit
//! [`drain`] waits for the queue to empty, except that after a signal it gives up
//! once the reader makes no progress, so signals always end the run. Where no
//! thread can be started, writes go to stdout directly, as before.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The most output held for a slow or absent reader.
pub const MAX_QUEUED: usize = 1 << 20;
/// After a signal, the drain gives up when the reader took nothing for this long.
const STALL_AFTER_SIGNAL: Duration = Duration::from_millis(200);
const WRITER_STACK: usize = 128 * 1024;

#[derive(Default)]
struct State {
    chunks: VecDeque<Vec<u8>>,
    bytes: usize,
    dropped: u64,
    /// stdout failed (EPIPE: the reader is gone); nothing more is written.
    closed: bool,
    /// Bytes written so far, to tell progress from a stall.
    written: u64,
    /// The latest must-deliver group (an `end` and the warning before it) that
    /// did not fit; replaced by the next one (the older is counted as dropped).
    held: Vec<Vec<u8>>,
}

impl State {
    fn push(&mut self, chunk: Vec<u8>) {
        self.bytes = self.bytes.saturating_add(chunk.len());
        self.chunks.push_back(chunk);
    }

    fn held_bytes(&self) -> usize {
        self.held.iter().map(Vec::len).sum()
    }

    /// Queues the held group (order kept: it came before what follows).
    fn release_held(&mut self) {
        for chunk in std::mem::take(&mut self.held) {
            self.push(chunk);
        }
    }
}

struct Shared {
    state: Mutex<State>,
    /// Signalled when a chunk is queued and when one is written.
    changed: Condvar,
}

static QUEUE: OnceLock<Option<Arc<Shared>>> = OnceLock::new();
static MUST_DELIVER: AtomicBool = AtomicBool::new(false);
/// Ending signals seen by the process, counted by the signal handlers.
pub static SIGNALS_SEEN: AtomicU64 = AtomicU64::new(0);

/// Starts the writer thread now rather than at the first event.
pub fn init() {
    let _ = queue();
}

fn queue() -> Option<&'static Arc<Shared>> {
    QUEUE.get_or_init(start).as_ref()
}

fn start() -> Option<Arc<Shared>> {
    let shared = Arc::new(Shared {
        state: Mutex::new(State::default()),
        changed: Condvar::new(),
    });
    let theirs = Arc::clone(&shared);
    std::thread::Builder::new()
        .name("stdout".to_string())
        .stack_size(WRITER_STACK)
        .spawn(move || write_out(&theirs))
        .ok()
        .map(|_| shared)
}

/// The writer thread: blocks in write(2) so the event loop does not have to.
fn write_out(shared: &Shared) {
    let mut out = std::io::stdout();
    loop {
        let chunk = {
            let Ok(mut st) = shared.state.lock() else {
                return;
            };
            while st.chunks.is_empty() {
                st = match shared.changed.wait(st) {
                    Ok(st) => st,
                    Err(_) => return,
                };
            }
            st.chunks.pop_front()
        };
        let Some(chunk) = chunk else { continue };
        let result = out.write_all(&chunk).and_then(|_| out.flush());
        let Ok(mut st) = shared.state.lock() else {
            return;
        };
        st.bytes = st.bytes.saturating_sub(chunk.len());
        st.written = st.written.saturating_add(chunk.len() as u64);
        if result.is_err() {
            // EPIPE or a full device: the reporter sees `closed` at its next
            // event and ends the run as the direct write did.
            st.closed = true;
            st.chunks.clear();
            st.bytes = 0;
        }
        shared.changed.notify_all();
        if st.closed {
            return;
        }
    }
}

/// The writer the renderers get: bytes collect until `flush`, which queues them
/// as one chunk (renderers flush once per event).
pub struct Stdout {
    buf: Vec<u8>,
}

/// stdout for a renderer: queued when the writer thread runs, direct otherwise.
pub fn stdout() -> Box<dyn Write + Send> {
    match queue() {
        Some(_) => Box::new(Stdout { buf: Vec::new() }),
        None => Box::new(std::io::stdout()),
    }
}

impl Write for Stdout {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let Some(shared) = queue() else {
            return Ok(());
        };
        let chunk = std::mem::take(&mut self.buf);
        let mut st = shared
            .state
            .lock()
            .map_err(|_| std::io::Error::other("the stdout queue is poisoned"))?;
        if st.closed {
            return Err(std::io::ErrorKind::BrokenPipe.into());
        }
        if chunk.is_empty() {
            return Ok(());
        }
        let forced = MUST_DELIVER.load(Ordering::Relaxed);
        let fits = |st: &State, extra: usize| {
            st.bytes
                .saturating_add(st.held_bytes())
                .saturating_add(extra)
                <= MAX_QUEUED
        };
        if !st.held.is_empty() && fits(&st, 0) {
            st.release_held();
        }
        if st.held.is_empty() && fits(&st, chunk.len()) {
            st.push(chunk);
        } else if forced {
            st.held.push(chunk);
        } else {
            st.dropped = st.dropped.saturating_add(1);
        }
        shared.changed.notify_all();
        Ok(())
    }
}

/// Marks the events written until the next call as ones that are never dropped
/// (the `end` lines).
pub fn must_deliver(yes: bool) {
    if yes
        && let Some(shared) = QUEUE.get().and_then(Option::as_ref)
        && let Ok(mut st) = shared.state.lock()
    {
        // A new group replaces one still held: that one is dropped.
        let stale = std::mem::take(&mut st.held).len() as u64;
        st.dropped = st.dropped.saturating_add(stale);
    }
    MUST_DELIVER.store(yes, Ordering::Relaxed);
}

/// The events dropped since the last call, once the queue has room to say so
/// (under half full) or `now` (before an `end`, which is delivered anyway);
/// `None` when there is nothing to say yet.
pub fn take_dropped(now: bool) -> Option<u64> {
    let mut st = queue()?.state.lock().ok()?;
    if st.dropped == 0 || (!now && st.bytes > MAX_QUEUED / 2) {
        return None;
    }
    Some(std::mem::take(&mut st.dropped))
}

/// Waits at exit for the queued output to be written. A reader that never reads
/// holds the exit until a signal arrives; after a signal (`ended_by_signal`, or
/// one that arrives while waiting) the wait ends as soon as the reader makes no
/// progress for a moment, so a signal always ends the process.
pub fn drain(ended_by_signal: bool) {
    let Some(shared) = QUEUE.get().and_then(Option::as_ref) else {
        return;
    };
    let seen_at_start = SIGNALS_SEEN.load(Ordering::Relaxed);
    let Ok(mut st) = shared.state.lock() else {
        return;
    };
    st.release_held();
    shared.changed.notify_all();
    let mut progress_at = Instant::now();
    let mut written = st.written;
    // A chunk being written has left the queue but not the process: wait for
    // the writer to account for it too.
    while !st.closed && (st.bytes > 0 || !st.chunks.is_empty()) {
        st = match shared.changed.wait_timeout(st, Duration::from_millis(20)) {
            Ok((st, _)) => st,
            Err(_) => return,
        };
        if st.written != written {
            written = st.written;
            progress_at = Instant::now();
        }
        let signalled = ended_by_signal || SIGNALS_SEEN.load(Ordering::Relaxed) != seen_at_start;
        if signalled && progress_at.elapsed() >= STALL_AFTER_SIGNAL {
            return;
        }
    }
}
