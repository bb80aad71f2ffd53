//! stdout that never blocks the event loop for a reader that does not read, and
//! loses nothing for one that does. The renderers write into [`Stdout`]; each
//! event's lines are committed by the reporter (through its [`Output`] handle)
//! into a batch, and the batch is handed to a writer thread once per wake-up of
//! the event loop ([`hand_off`], called before the loop waits), or sooner when
//! it grows large: one hand-off and one wake of the writer per wake-up, not per
//! event, and no allocation per event (the buffers are reused).
//!
//! The queue (batch, hand-off and what the writer has not written yet) holds at
//! most [`MAX_QUEUED`] bytes. When an event does not fit, the reporter waits for
//! room while the writer makes progress, so a file, a fast pipe, a terminal or a
//! slow but steady reader gets every event; the wait is in short steps and ends
//! when a signal arrives, so the loop's signals still end the run. When the
//! writer wrote nothing for [`STUCK_AFTER`] (a reader that stopped reading) the
//! reader is taken as stuck: what does not fit is handled as the event's
//! [`Delivery`] says, until the queue is half empty again. Droppable events are
//! dropped and counted, and the reporter says how many once the queue has room
//! again ([`Output::take_dropped`]). The latest `end` (with the warning before
//! it) is never dropped: it is held aside and goes out first when there is room
//! or at exit, so the last line is always the run's `end`. At exit [`drain`]
//! waits for the queue to empty, except that after a signal it gives up once
//! the reader makes no progress, so signals always end the run. Where no thread
//! can be started, writes go to stdout directly, as before.
//!
//! When stdout is a regular file or /dev/null, which no reader can hold up, the
//! hand-off writes the batch itself while the writer has nothing in hand (same
//! order, no thread wake-up: at one probe a second that wake-up was a third of
//! `connect --json`'s CPU); a write that takes longer than [`DIRECT_SLOW`] (a
//! congested disk) turns this off for the rest of the run.
//!
//! The queue itself is one per process (there is one stdout), started once
//! before the run clock; nothing here is switched per event.

use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// The most output held for a slow or absent reader.
pub const MAX_QUEUED: usize = 1 << 20;
/// With the queue full, the reader is taken as stuck once the writer wrote
/// nothing for this long (a file or a reader that reads never pauses so long).
pub const STUCK_AFTER: Duration = Duration::from_millis(500);
/// After a signal, the drain gives up when the reader took nothing for this long.
const STALL_AFTER_SIGNAL: Duration = Duration::from_millis(200);
/// The step of a wait for room: how soon a signal ends it.
const WAIT_STEP: Duration = Duration::from_millis(10);
/// A batch this large goes to the writer at once (a burst, like `watch`
/// joining thousands of connections, flows while it is produced).
const HAND_OFF_AT: usize = 64 * 1024;
/// The writer writes at most this much per write(2), so progress is seen (and
/// counted) while a slow reader takes a large hand-off.
const WRITE_PIECE: usize = 16 * 1024;
const WRITER_STACK: usize = 128 * 1024;
/// A direct write (see the module's doc) slower than this hands the rest of
/// the run's output to the writer thread.
pub const DIRECT_SLOW: Duration = Duration::from_millis(10);

/// Whether an event's lines may be dropped when stdout is not being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Dropped, and counted, when the reader is stuck and the queue is full.
    Droppable,
    /// Never dropped (an `end` and the warning before it): held aside when the
    /// queue is full, replacing an older held group (which is counted dropped).
    Always,
}

struct State {
    /// What the renderers flushed since the last commit, and how many events.
    staged: Vec<u8>,
    staged_events: u64,
    /// Committed lines not yet handed to the writer.
    batch: Vec<u8>,
    /// Handed to the writer, not taken by it yet.
    outgoing: Vec<u8>,
    /// Taken by the writer and not written yet.
    writing: usize,
    /// The writer's last buffer, emptied, for the next batch.
    spare: Vec<u8>,
    /// The latest must-deliver group (an `end` and the warning before it) that
    /// did not fit; replaced by the next one (the older is counted as dropped).
    held: Vec<u8>,
    held_events: u64,
    dropped: u64,
    /// stdout failed (EPIPE: the reader is gone); nothing more is written.
    closed: bool,
    /// Bytes written so far, to tell progress from a stall.
    written: u64,
    /// The last time the writer wrote or took up work.
    progress_at: Instant,
    /// The reader was taken as stuck: no waiting until the queue is half empty.
    stuck: bool,
    /// The writer waits for a hand-off (it needs a wake-up).
    writer_idle: bool,
    /// The reporter waits for room (it needs a wake-up at each write).
    producer_waiting: bool,
}

impl State {
    fn new() -> State {
        State {
            staged: Vec::new(),
            staged_events: 0,
            batch: Vec::new(),
            outgoing: Vec::new(),
            writing: 0,
            spare: Vec::new(),
            held: Vec::new(),
            held_events: 0,
            dropped: 0,
            closed: false,
            written: 0,
            progress_at: Instant::now(),
            stuck: false,
            writer_idle: false,
            producer_waiting: false,
        }
    }

    /// Bytes committed and not written yet.
    fn queued(&self) -> usize {
        self.batch.len() + self.outgoing.len() + self.writing
    }

    fn fits(&self, extra: usize) -> bool {
        self.queued()
            .saturating_add(self.held.len())
            .saturating_add(extra)
            <= MAX_QUEUED
    }

    /// Queues the held group (order kept: it came before what follows).
    fn release_held(&mut self) {
        self.batch.extend_from_slice(&self.held);
        self.held.clear();
        self.held_events = 0;
    }

    /// Places what the renderers flushed for one event: queued when it fits
    /// (a held group first, once there is room for it); otherwise, when
    /// `give_up`, held or dropped as `delivery` says. `false`: no room yet.
    fn place(&mut self, delivery: Delivery, give_up: bool) -> bool {
        if self.staged.is_empty() {
            return true;
        }
        if !self.held.is_empty() && self.fits(0) {
            self.release_held();
        }
        if self.held.is_empty() && self.fits(self.staged.len()) {
            if self.batch.is_empty() {
                // The first event of a wake-up: its buffer becomes the batch.
                std::mem::swap(&mut self.batch, &mut self.staged);
            } else {
                self.batch.extend_from_slice(&self.staged);
            }
        } else if !give_up {
            return false;
        } else if delivery == Delivery::Always {
            self.held.extend_from_slice(&self.staged);
            self.held_events = self.held_events.saturating_add(self.staged_events);
        } else {
            self.dropped = self.dropped.saturating_add(self.staged_events);
        }
        self.staged.clear();
        self.staged_events = 0;
        true
    }

    /// Gives the batch to the writer; `true` when the writer must be woken.
    fn hand_off(&mut self) -> bool {
        if self.batch.is_empty() || self.closed {
            return false;
        }
        if self.outgoing.is_empty() {
            std::mem::swap(&mut self.outgoing, &mut self.batch);
            std::mem::swap(&mut self.batch, &mut self.spare);
        } else {
            self.outgoing.extend_from_slice(&self.batch);
            self.batch.clear();
        }
        if self.writer_idle {
            // The stall clock starts when the writer has work.
            self.progress_at = Instant::now();
        }
        self.writer_idle
    }

    /// The events dropped since the last call, for the warning before the next
    /// event. Before an `Always` event (an `end`) the count is given whatever the
    /// queue holds, and a group still held is superseded by it (and counted);
    /// before a droppable one, only once the queue is under half full.
    fn take_dropped(&mut self, delivery: Delivery) -> Option<u64> {
        if delivery == Delivery::Always {
            self.dropped = self.dropped.saturating_add(self.held_events);
            self.held.clear();
            self.held_events = 0;
        } else if self.queued() > MAX_QUEUED / 2 {
            return None;
        }
        (self.dropped != 0).then(|| std::mem::take(&mut self.dropped))
    }
}

struct Shared {
    state: Mutex<State>,
    /// stdout is a regular file or /dev/null, and no direct write was slow yet.
    direct: AtomicBool,
    /// Something was dropped or held since the reporter last asked: only then
    /// does [`Output::take_dropped`] take the lock (it is asked at every event).
    attention: AtomicBool,
    /// Signalled at a hand-off the idle writer must see, and at each write
    /// while the reporter waits for room.
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> Option<MutexGuard<'_, State>> {
        self.state.lock().ok()
    }
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
        state: Mutex::new(State::new()),
        direct: AtomicBool::new(no_reader_can_hold_stdout()),
        attention: AtomicBool::new(false),
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

/// Whether stdout is a regular file or /dev/null: written without a reader, so a
/// write there never waits for one (a pipe, a socket or a terminal can).
fn no_reader_can_hold_stdout() -> bool {
    let Ok(fd) = std::io::stdout().as_fd().try_clone_to_owned() else {
        return false;
    };
    let Ok(meta) = std::fs::File::from(fd).metadata() else {
        return false;
    };
    let kind = meta.file_type();
    kind.is_file()
        || (kind.is_char_device()
            && std::fs::metadata("/dev/null")
                .is_ok_and(|null| null.file_type().is_char_device() && null.rdev() == meta.rdev()))
}

/// Hands the lines committed since the last hand-off to the writer: the event
/// loop calls this before it waits, so each wake-up's events go out together.
/// To a regular file or /dev/null, with the writer idle and nothing before them
/// still queued, they are written here instead (see the module's doc).
pub fn hand_off() {
    let Some(shared) = QUEUE.get().and_then(Option::as_ref) else {
        return;
    };
    let Some(mut st) = shared.lock() else {
        return;
    };
    if shared.direct.load(Ordering::Relaxed)
        && st.writer_idle
        && st.outgoing.is_empty()
        && st.writing == 0
        && st.held.is_empty()
        && !st.closed
        && !st.batch.is_empty()
    {
        let started = Instant::now();
        let result = {
            let mut out = std::io::stdout().lock();
            out.write_all(&st.batch).and_then(|_| out.flush())
        };
        if started.elapsed() > DIRECT_SLOW {
            shared.direct.store(false, Ordering::Relaxed);
        }
        let n = st.batch.len();
        st.batch.clear();
        st.written = st.written.saturating_add(n as u64);
        st.progress_at = Instant::now();
        if result.is_err() {
            // As in the writer: the reporter sees `closed` at its next event.
            st.closed = true;
            st.staged.clear();
        }
        return;
    }
    if st.hand_off() {
        shared.changed.notify_all();
    }
}

/// Whether every line committed so far is written (nothing batched, handed off,
/// being written or held): a terminal's progress line on stderr may be drawn
/// only then, or it lands in front of lines still on their way, unerased.
pub fn settled() -> bool {
    match QUEUE.get().and_then(Option::as_ref) {
        Some(shared) => shared
            .lock()
            .is_none_or(|st| st.queued() == 0 && st.held.is_empty()),
        None => true,
    }
}

/// Where a piece of `buf` from `from` may end: at most [`WRITE_PIECE`] on, at a
/// line's end when there is one (stdout's line buffer then copies nothing).
fn piece_end(buf: &[u8], from: usize) -> usize {
    let limit = buf.len().min(from.saturating_add(WRITE_PIECE));
    if limit == buf.len() {
        return limit;
    }
    match buf[from..limit].iter().rposition(|&b| b == b'\n') {
        Some(i) => from + i + 1,
        None => limit,
    }
}

/// The writer thread: blocks in write(2) so the event loop does not have to.
fn write_out(shared: &Shared) {
    // stdout is locked per piece, never while waiting: text written directly
    // (`report::print_all`: a plan, completions, a man page) would otherwise wait
    // for a lock this thread never gives back.
    let stdout = std::io::stdout();
    loop {
        let mut buf = {
            let Some(mut st) = shared.lock() else {
                return;
            };
            while st.outgoing.is_empty() {
                st.writer_idle = true;
                st = match shared.changed.wait(st) {
                    Ok(st) => st,
                    Err(_) => return,
                };
            }
            st.writer_idle = false;
            st.progress_at = Instant::now();
            let buf = std::mem::take(&mut st.outgoing);
            st.writing = buf.len();
            buf
        };
        let mut from = 0;
        while from < buf.len() {
            let to = piece_end(&buf, from);
            let result = {
                let mut out = stdout.lock();
                out.write_all(&buf[from..to]).and_then(|_| out.flush())
            };
            let Some(mut st) = shared.lock() else {
                return;
            };
            let n = to - from;
            from = to;
            st.writing = st.writing.saturating_sub(n);
            st.written = st.written.saturating_add(n as u64);
            st.progress_at = Instant::now();
            if st.queued() <= MAX_QUEUED / 2 {
                st.stuck = false;
            }
            if result.is_err() {
                // EPIPE or a full device: the reporter sees `closed` at its next
                // event and ends the run as the direct write did.
                st.closed = true;
                st.writing = 0;
                st.batch.clear();
                st.outgoing.clear();
                st.staged.clear();
                shared.changed.notify_all();
                return;
            }
            if st.producer_waiting || from == buf.len() {
                shared.changed.notify_all();
            }
        }
        buf.clear();
        if let Some(mut st) = shared.lock()
            && st.spare.capacity() < buf.capacity()
        {
            st.spare = buf;
        }
    }
}

/// The writer the renderers get: bytes collect until `flush`, which stages them
/// for the reporter to commit (renderers flush once per event).
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

    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let mut st = self
            .shared
            .lock()
            .ok_or_else(|| std::io::Error::other("the stdout queue is poisoned"))?;
        if st.closed {
            self.buf.clear();
            return Err(std::io::ErrorKind::BrokenPipe.into());
        }
        if !self.buf.is_empty() {
            if st.staged.is_empty() {
                // No copy: the buffers trade places (both keep their capacity).
                std::mem::swap(&mut st.staged, &mut self.buf);
            } else {
                st.staged.extend_from_slice(&self.buf);
                self.buf.clear();
            }
            st.staged_events = st.staged_events.saturating_add(1);
        }
        Ok(())
    }
}

/// How the queue asks whether a signal that ends the run arrived (and the loop
/// has not taken it yet): set once, by the signal handlers' owner when it installs
/// them (`event_loop::Signals::install`), so this module needs nothing above it
/// and no flag is toggled per event.
static SIGNAL_CHECK: OnceLock<fn() -> bool> = OnceLock::new();

/// Tells the queue how to see an arrived signal (the first call wins).
pub fn set_signal_check(arrived: fn() -> bool) {
    let _ = SIGNAL_CHECK.set(arrived);
}

fn signal_arrived() -> bool {
    SIGNAL_CHECK.get().is_some_and(|arrived| arrived())
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

    /// Queues the lines the sink flushed for one event. When they do not fit,
    /// waits for room while the writer makes progress (in steps, ending at a
    /// signal); a stuck reader's events are held or dropped as `delivery` says.
    pub fn commit(&self, delivery: Delivery) {
        let Some(shared) = &self.shared else { return };
        let Some(mut st) = shared.lock() else { return };
        loop {
            let give_up = st.closed || st.stuck;
            if st.place(delivery, give_up) {
                break;
            }
            // No room: the writer gets what is batched, and the reader a moment.
            if st.hand_off() {
                shared.changed.notify_all();
            }
            if st.progress_at.elapsed() >= STUCK_AFTER || signal_arrived() {
                st.stuck = true;
                continue;
            }
            st.producer_waiting = true;
            st = match shared.changed.wait_timeout(st, WAIT_STEP) {
                Ok((st, _)) => st,
                Err(_) => return,
            };
            st.producer_waiting = false;
        }
        if st.dropped != 0 || !st.held.is_empty() {
            shared.attention.store(true, Ordering::Relaxed);
        }
        if (st.batch.len() >= HAND_OFF_AT || delivery == Delivery::Always) && st.hand_off() {
            shared.changed.notify_all();
        }
    }

    /// The events dropped since the last call, once the queue has room to say
    /// so (under half full) or before an `Always` event in any case; `None` when
    /// there is nothing to say yet.
    pub fn take_dropped(&self, delivery: Delivery) -> Option<u64> {
        let shared = self.shared.as_ref()?;
        if !shared.attention.load(Ordering::Relaxed) {
            return None;
        }
        let mut st = shared.lock()?;
        let dropped = st.take_dropped(delivery);
        shared
            .attention
            .store(st.dropped != 0 || !st.held.is_empty(), Ordering::Relaxed);
        dropped
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
    let Some(mut st) = shared.lock() else {
        return;
    };
    // Lines of an event the reporter did not get to commit are its last ones;
    // they follow a held group, which goes out now whatever the queue holds.
    st.release_held();
    let staged = std::mem::take(&mut st.staged);
    st.batch.extend_from_slice(&staged);
    st.hand_off();
    shared.changed.notify_all();
    let mut signalled = ended_by_signal;
    let mut progress_at = Instant::now();
    let mut written = st.written;
    // A piece being written has left the queue but not the process: wait for
    // the writer to account for it too.
    while !st.closed && st.queued() > 0 {
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
        st.staged.extend(std::iter::repeat_n(b'x', len));
        st.staged_events += 1;
    }

    /// As the writer: takes what was handed off and writes it all.
    fn write_all(st: &mut State) -> usize {
        st.hand_off();
        let n = st.outgoing.len();
        st.outgoing.clear();
        n
    }

    #[test]
    fn staged_lines_wait_for_the_commit_and_the_batch_for_the_hand_off() {
        let mut st = State::new();
        stage(&mut st, 10);
        assert!(st.batch.is_empty());
        assert!(st.place(Delivery::Droppable, false));
        stage(&mut st, 5);
        assert!(st.place(Delivery::Droppable, false));
        assert_eq!((st.batch.len(), st.queued()), (15, 15));
        assert!(st.staged.is_empty() && st.outgoing.is_empty());
        st.writer_idle = true;
        // One hand-off for both events, and one wake-up of the writer.
        assert!(st.hand_off());
        assert_eq!((st.batch.len(), st.outgoing.len()), (0, 15));
        assert!(!st.hand_off());
    }

    #[test]
    fn no_room_waits_unless_the_reader_is_stuck() {
        let mut st = State::new();
        stage(&mut st, MAX_QUEUED);
        assert!(st.place(Delivery::Droppable, false));
        stage(&mut st, 1);
        // Not given up: the event stays staged for the next try, nothing dropped.
        assert!(!st.place(Delivery::Droppable, false));
        assert_eq!((st.staged.len(), st.dropped), (1, 0));
        write_all(&mut st);
        assert!(st.place(Delivery::Droppable, false));
        assert_eq!((st.batch.len(), st.dropped), (1, 0));
    }

    #[test]
    fn a_stuck_reader_drops_droppable_events_and_holds_the_end() {
        let mut st = State::new();
        stage(&mut st, MAX_QUEUED);
        st.place(Delivery::Droppable, true);
        stage(&mut st, 1);
        st.place(Delivery::Droppable, true);
        assert_eq!(st.dropped, 1);
        // Not reported while the queue is over half full, except before an end.
        assert_eq!(st.take_dropped(Delivery::Droppable), None);
        assert_eq!(st.take_dropped(Delivery::Always), Some(1));
        stage(&mut st, 5);
        stage(&mut st, 7);
        st.place(Delivery::Always, true);
        assert_eq!((st.held.len(), st.held_events), (12, 2));
        assert_eq!(st.dropped, 0);
        // A later end supersedes the held one, which is counted as dropped.
        assert_eq!(st.take_dropped(Delivery::Always), Some(2));
        assert!(st.held.is_empty());
    }

    #[test]
    fn the_held_end_goes_first_once_there_is_room() {
        let mut st = State::new();
        stage(&mut st, MAX_QUEUED);
        st.place(Delivery::Droppable, true);
        st.hand_off();
        stage(&mut st, 3);
        st.place(Delivery::Always, true);
        assert_eq!(st.held.len(), 3);
        // The writer takes the big hand-off.
        st.outgoing.clear();
        stage(&mut st, 4);
        st.place(Delivery::Droppable, true);
        assert_eq!(st.batch.len(), 7);
        assert!(st.held.is_empty());
        assert_eq!(st.dropped, 0);
    }

    #[test]
    fn pieces_end_at_a_line_end_within_the_piece_size() {
        let mut buf = vec![b'x'; 3 * WRITE_PIECE];
        buf[WRITE_PIECE - 10] = b'\n';
        assert_eq!(piece_end(&buf, 0), WRITE_PIECE - 9);
        // No line end within a piece: the piece size.
        assert_eq!(piece_end(&buf, WRITE_PIECE), 2 * WRITE_PIECE);
        assert_eq!(piece_end(&buf, 2 * WRITE_PIECE + 5), 3 * WRITE_PIECE);
    }
}
