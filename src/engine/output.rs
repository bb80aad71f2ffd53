//! stdout that never blocks the event loop. A reader that stops reading (a pipe
//! nobody drains) used to stop `listen` in write(2): nothing served, signals
//! unanswered. The renderers now write into [`Stdout`], whose flushed chunks (one
//! event each) go to a queue that a writer thread drains into the real stdout.
//!
//! The queue holds at most [`MAX_QUEUED`] bytes. What happens to an event's lines
//! beyond that is the reporter's to say, per event, through its [`Output`]
//! handle: a flushed chunk waits (staged) until the reporter commits it with its
//! [`Delivery`]. Droppable events are dropped and counted, and the reporter says
//! how many once the queue has room again ([`Output::take_dropped`]). The latest
//! `end` (with the warning before it) is never dropped: when the queue is full it
//! is held aside and goes out first when there is room or at exit, so the last
//! line is always the run's `end`. At exit [`drain`] waits for the queue to
//! empty, except that after a signal it gives up once the reader makes no
//! progress, so signals always end the run. Where no thread can be started,
//! writes go to stdout directly, as before.
//!
//! The queue itself is one per process (there is one stdout), started once
//! before the run clock; nothing here is switched per event.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The most output held for a slow or absent reader.
pub const MAX_QUEUED: usize = 1 << 20;
/// After a signal, the drain gives up when the reader took nothing for this long.
const STALL_AFTER_SIGNAL: Duration = Duration::from_millis(200);
const WRITER_STACK: usize = 128 * 1024;

/// Whether an event's lines may be dropped when stdout is not being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Dropped, and counted, when the queue is full.
    Droppable,
    /// Never dropped (an `end` and the warning before it): held aside when the
    /// queue is full, replacing an older held group (which is counted dropped).
    Always,
}

#[derive(Default)]
struct State {
    chunks: VecDeque<Vec<u8>>,
    bytes: usize,
    /// Chunks flushed by a renderer that the reporter has not committed yet.
    staged: Vec<Vec<u8>>,
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

    fn fits(&self, extra: usize) -> bool {
        self.bytes
            .saturating_add(self.held_bytes())
            .saturating_add(extra)
            <= MAX_QUEUED
    }

    /// Queues the held group (order kept: it came before what follows).
    fn release_held(&mut self) {
        for chunk in std::mem::take(&mut self.held) {
            self.push(chunk);
        }
    }

    /// Queues what the renderers flushed for one event, as `delivery` says. A
    /// held group goes first once there is room for it.
    fn commit(&mut self, delivery: Delivery) {
        for chunk in std::mem::take(&mut self.staged) {
            if !self.held.is_empty() && self.fits(0) {
                self.release_held();
            }
            if self.held.is_empty() && self.fits(chunk.len()) {
                self.push(chunk);
            } else if delivery == Delivery::Always {
                self.held.push(chunk);
            } else {
                self.dropped = self.dropped.saturating_add(1);
            }
        }
    }

    /// The events dropped since the last call, for the warning before the next
    /// event. Before an `Always` event (an `end`) the count is given whatever the
    /// queue holds, and a group still held is superseded by it (and counted);
    /// before a droppable one, only once the queue is under half full.
    fn take_dropped(&mut self, delivery: Delivery) -> Option<u64> {
        if delivery == Delivery::Always {
            let stale = std::mem::take(&mut self.held).len() as u64;
            self.dropped = self.dropped.saturating_add(stale);
        } else if self.bytes > MAX_QUEUED / 2 {
            return None;
        }
        (self.dropped != 0).then(|| std::mem::take(&mut self.dropped))
    }
}

struct Shared {
    state: Mutex<State>,
    /// Signalled when a chunk is queued and when one is written.
    changed: Condvar,
}

/// The one stdout queue of the process, started by [`init`]; `None` inside when
/// no writer thread could be started.
static QUEUE: OnceLock<Option<Arc<Shared>>> = OnceLock::new();

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
            st.staged.clear();
            st.bytes = 0;
        }
        shared.changed.notify_all();
        if st.closed {
            return;
        }
    }
}

/// The writer the renderers get: bytes collect until `flush`, which stages them
/// as one chunk for the reporter to commit (renderers flush once per event).
pub struct Stdout {
    buf: Vec<u8>,
    shared: Arc<Shared>,
}

/// stdout for a renderer: queued when the writer thread runs, direct otherwise.
pub fn stdout() -> Box<dyn Write + Send> {
    match queue() {
        Some(shared) => Box::new(Stdout {
            buf: Vec::new(),
            shared: Arc::clone(shared),
        }),
        None => Box::new(std::io::stdout()),
    }
}

impl Write for Stdout {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let chunk = std::mem::take(&mut self.buf);
        let mut st = self
            .shared
            .state
            .lock()
            .map_err(|_| std::io::Error::other("the stdout queue is poisoned"))?;
        if st.closed {
            return Err(std::io::ErrorKind::BrokenPipe.into());
        }
        if !chunk.is_empty() {
            st.staged.push(chunk);
        }
        Ok(())
    }
}

/// The reporter's handle on the stdout queue: after each event it commits what
/// its sink flushed, saying whether those lines may be dropped.
#[derive(Clone)]
pub struct Output {
    shared: Option<Arc<Shared>>,
}

impl Output {
    /// The queue the writers of [`stdout`] feed, started if it was not yet (so
    /// a reporter made before its sink's writer still commits its lines); when
    /// no writer thread runs, writes are direct and there is nothing to commit.
    pub fn current() -> Output {
        Output {
            shared: queue().cloned(),
        }
    }

    /// Queues the lines the sink flushed for one event.
    pub fn commit(&self, delivery: Delivery) {
        if let Some(shared) = &self.shared
            && let Ok(mut st) = shared.state.lock()
        {
            st.commit(delivery);
            shared.changed.notify_all();
        }
    }

    /// The events dropped since the last call, once the queue has room to say
    /// so (under half full) or before an `Always` event in any case; `None` when
    /// there is nothing to say yet.
    pub fn take_dropped(&self, delivery: Delivery) -> Option<u64> {
        self.shared
            .as_ref()?
            .state
            .lock()
            .ok()?
            .take_dropped(delivery)
    }
}

/// Waits at exit for the queued output to be written. A reader that never reads
/// holds the exit until a signal arrives; after a signal (`ended_by_signal`, or
/// `signal_arrived` saying one came before or while waiting) the wait ends as
/// soon as the reader makes no progress for a moment, so a signal always ends
/// the process.
pub fn drain(ended_by_signal: bool, mut signal_arrived: impl FnMut() -> bool) {
    let Some(shared) = QUEUE.get().and_then(Option::as_ref) else {
        return;
    };
    let Ok(mut st) = shared.state.lock() else {
        return;
    };
    // Lines of an event the reporter did not get to commit are its last ones;
    // they follow a held group, which goes out now whatever the queue holds.
    st.commit(Delivery::Always);
    st.release_held();
    shared.changed.notify_all();
    let mut signalled = ended_by_signal;
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
        signalled = signalled || signal_arrived();
        if signalled && progress_at.elapsed() >= STALL_AFTER_SIGNAL {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(st: &mut State, len: usize) {
        st.staged.push(vec![b'x'; len]);
    }

    #[test]
    fn staged_lines_wait_for_the_commit() {
        let mut st = State::default();
        stage(&mut st, 10);
        assert!(st.chunks.is_empty());
        st.commit(Delivery::Droppable);
        assert_eq!((st.chunks.len(), st.bytes), (1, 10));
        assert!(st.staged.is_empty());
    }

    #[test]
    fn a_full_queue_drops_droppable_events_and_holds_the_end() {
        let mut st = State::default();
        stage(&mut st, MAX_QUEUED);
        st.commit(Delivery::Droppable);
        stage(&mut st, 1);
        st.commit(Delivery::Droppable);
        assert_eq!(st.dropped, 1);
        // Not reported while the queue is over half full, except before an end.
        assert_eq!(st.take_dropped(Delivery::Droppable), None);
        assert_eq!(st.take_dropped(Delivery::Always), Some(1));
        stage(&mut st, 5);
        stage(&mut st, 7);
        st.commit(Delivery::Always);
        assert_eq!(st.held.len(), 2);
        assert_eq!(st.dropped, 0);
        // A later end supersedes the held one, which is counted as dropped.
        assert_eq!(st.take_dropped(Delivery::Always), Some(2));
        assert!(st.held.is_empty());
    }

    #[test]
    fn the_held_end_goes_first_once_there_is_room() {
        let mut st = State::default();
        stage(&mut st, MAX_QUEUED);
        st.commit(Delivery::Droppable);
        stage(&mut st, 3);
        st.commit(Delivery::Always);
        // The writer takes the big chunk.
        let big = st.chunks.pop_front().map_or(0, |c| c.len());
        st.bytes -= big;
        stage(&mut st, 4);
        st.commit(Delivery::Droppable);
        let lens: Vec<usize> = st.chunks.iter().map(Vec::len).collect();
        assert_eq!(lens, vec![3, 4]);
        assert!(st.held.is_empty());
        assert_eq!(st.dropped, 0);
    }
}
