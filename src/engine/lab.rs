//! The lab's scenario runner (`lab SCENARIO`, `demo`): a listener and a connector
//! in this process's private network namespace (entered by `cmd::prepare` while the
//! process has one thread, see `sys::netns`), one event loop following both
//! connections with the engine's sessions, and one fault injected to reproduce a
//! way a peer dies. The connector is `connect`'s connection (conn 1): its timeline,
//! JSON, `--expect`/`--within` and exit code are connect's. The peer's end (conn 2)
//! is shown with `--both`.
//!
//! The fault acts on what the lab owns: the loopback link (down is a pulled cable)
//! and the peer's socket (close, abort, mute, stop reading). The catalogue and
//! what a scenario predicts are `model::lab`'s.

use std::time::Duration;

use socket2::Socket;

use crate::config::{Fault, SendPlan};
use crate::engine::connection::{self, ConnectOptions, Dialed};
use crate::engine::event_loop::{EventLoop, Signals, Woke};
use crate::engine::listener;
use crate::engine::run::{Reporter, RunError, stop_message};
use crate::engine::session::{Events, Plan, Session};
use crate::model::event::{EndFacts, EventKind, Outcome};
use crate::model::lab::{Action, Arming, FLAP_DOWN, Injected, Scenario, Trigger, fault_when};
use crate::sys;

/// The connection under test: connect's id.
pub const CONN: u64 = connection::CONN;
/// The peer's end of it (shown with `--both`).
pub const PEER: u64 = 2;
const LISTENER: u64 = 3;
/// The loopback link the lab switches.
const LINK: &str = "lo";
/// The connector's own handshake completes inside connect(); the accept queue holds
/// it at once. This only bounds a kernel that would not.
const ACCEPT_WAIT: Duration = Duration::from_secs(2);

/// What a scenario run takes: built from `lab`'s and `demo`'s flags by `cmd::lab`.
#[derive(Debug, Clone)]
pub struct LabOptions {
    pub scenario: &'static Scenario,
    /// The connector; its target's port is the lab listener's, once bound.
    pub connect: ConnectOptions,
    /// The connector's writes from the fault on (busy, not-reading).
    pub send_at_fault: Option<SendPlan>,
    /// What fires the fault when `fault_at` is `None`.
    pub trigger: Trigger,
    /// Run time of the fault (`--fault-at`); `None` leaves it to the trigger.
    pub fault_at: Option<Duration>,
    /// The trigger fires on this many answers (probes or heartbeat replies).
    pub answers_before_fault: u32,
    /// Also show the peer's end (conn 2).
    pub both: bool,
}

/// The lab's state besides the two sessions.
struct Lab<'a> {
    cfg: &'a LabOptions,
    /// The fault's run time once known (from `--fault-at` or the trigger).
    fault_at: Option<Duration>,
    /// The trigger and the probe bookkeeping.
    arming: Arming,
    /// When a flapped link comes back up.
    restore_at: Option<Duration>,
    injected: Option<Injected>,
    peer: Option<Session>,
    peer_reading: bool,
}

impl Lab<'_> {
    /// Folds the connector's events into the trigger and the probe bookkeeping.
    fn watch_connector(&mut self, now: Duration, events: &[EventKind]) {
        for e in events {
            if self.arming.observe(e) && self.fault_at.is_none() {
                self.fault_at = Some(now);
            }
        }
    }

    fn link(&self, up: bool) -> Result<(), RunError> {
        sys::netns::set_link_up(LINK, up).map_err(RunError::io(if up {
            "bring the lab's loopback link up"
        } else {
            "take the lab's loopback link down"
        }))
    }

    /// Ends the peer's session with a fault and drops it (closing its socket).
    fn close_peer(
        &mut self,
        now: Duration,
        fault: Fault,
        message: &str,
        lp: &mut EventLoop<'_>,
        rep: &mut Reporter,
    ) -> Result<(), RunError> {
        if let Some(mut peer) = self.peer.take() {
            let end = peer.close_now(now, fault, message);
            lp.unwatch(peer.fd());
            drop(peer);
            if self.cfg.both {
                rep.emit(PEER, EventKind::End(end))?;
            }
        }
        Ok(())
    }

    /// Carries out the scenario's fault now.
    fn inject(
        &mut self,
        now: Duration,
        conn: &mut Session,
        lp: &mut EventLoop<'_>,
        rep: &mut Reporter,
    ) -> Result<(), RunError> {
        let scenario = self.cfg.scenario;
        rep.emit(
            CONN,
            EventKind::Fault {
                scenario: scenario.name,
                action: scenario.fault,
            },
        )?;
        let send = self.cfg.send_at_fault.clone();
        match scenario.action {
            Action::None => {}
            Action::LinkDown => self.link(false)?,
            Action::Vanish => {
                self.link(false)?;
                self.close_peer(
                    now,
                    Fault::Reset(Duration::ZERO),
                    "the lab aborted this end while the link was down: its RST is lost and the \
                     connection vanishes from this kernel (scenario reboot)",
                    lp,
                    rep,
                )?;
                self.link(true)?;
            }
            Action::PeerClose => self.close_peer(
                now,
                Fault::Close(Duration::ZERO),
                "the lab closed this end (FIN) (scenario exits)",
                lp,
                rep,
            )?,
            Action::PeerAbort => self.close_peer(
                now,
                Fault::Reset(Duration::ZERO),
                "the lab aborted this end (RST) (scenario aborts)",
                lp,
                rep,
            )?,
            Action::PeerMute => {
                if let Some(peer) = self.peer.as_mut() {
                    peer.mute();
                }
            }
            Action::PeerStopsReading => {
                if let Some(peer) = &self.peer {
                    lp.unwatch(peer.fd());
                }
                self.peer_reading = false;
                if let Some(plan) = send {
                    conn.start_sending(plan, now);
                }
            }
            Action::LinkFlap => {
                self.link(false)?;
                self.restore_at = Some(now.saturating_add(FLAP_DOWN));
            }
            Action::LinkDownWhileSending => {
                self.link(false)?;
                if let Some(plan) = send {
                    conn.start_sending(plan, now);
                }
            }
        }
        self.injected = Some(
            self.arming
                .injected(now, conn.last_contact(), conn.next_probe_due()),
        );
        Ok(())
    }

    /// The connector's `end` with the scenario's own prediction where it has one
    /// (see [`Injected::predicted_detect`]); the model's stands for the rest.
    fn predicted(&self, mut end: EndFacts, last_contact: Duration) -> EndFacts {
        let scenario = self
            .injected
            .and_then(|i| i.predicted_detect(self.cfg.scenario.prediction, last_contact));
        if let Some(d) = scenario {
            end.predicted_detect_s = Some((d.as_secs_f64() * 1000.0).round() / 1000.0);
        }
        end
    }
}

/// Waits for the connector's connection in the accept queue; `Err` carries the
/// signal that interrupted the wait.
fn accept(
    listener: &Socket,
    rep: &Reporter,
    lp: &mut EventLoop<'_>,
) -> Result<Result<Socket, Outcome>, RunError> {
    let deadline = rep.clock.now().saturating_add(ACCEPT_WAIT);
    lp.watch(std::os::fd::AsFd::as_fd(listener), LISTENER, false)?;
    let accepted = loop {
        match listener.accept() {
            Ok((sock, _)) => break Ok(Ok(sock)),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => break Err(RunError::io("accept the lab's connection")(e)),
        }
        match lp.wait(&rep.clock, Some(deadline)) {
            Ok(Woke::Ready) => continue,
            Ok(Woke::Signal(outcome)) => break Ok(Err(outcome)),
            Ok(Woke::Deadline) => {
                break Err(RunError::io("accept the lab's connection")(
                    std::io::Error::from(std::io::ErrorKind::TimedOut),
                ));
            }
            Err(e) => break Err(e),
        }
    };
    lp.unwatch(std::os::fd::AsFd::as_fd(listener));
    accepted
}

/// Runs a scenario in the current network namespace (already private).
pub fn run(cfg: &LabOptions, rep: &mut Reporter, signals: &Signals) -> Result<EndFacts, RunError> {
    let scenario = cfg.scenario;
    // A new network namespace's loopback starts down.
    sys::netns::set_link_up(LINK, true)
        .map_err(RunError::io("bring the lab's loopback link up"))?;
    let loopback = std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 0));
    let listener = listener::bind_to(loopback, None)?;
    let port = listener
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .map(|a| a.port())
        .ok_or_else(|| {
            RunError::io("read the lab's listening address")(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "not an internet socket address",
            ))
        })?;
    let mut connect = cfg.connect.clone();
    connect.target.port = port;

    let when = fault_when(cfg.trigger, cfg.fault_at, cfg.answers_before_fault);
    rep.emit(
        CONN,
        EventKind::Scenario {
            name: scenario.name,
            stands_for: scenario.stands_for,
            fault: scenario.fault,
            when,
        },
    )?;

    let mut lp = EventLoop::new(Some(signals))?;
    let sock = match connection::dial(&connect, rep, &mut lp)? {
        Dialed::Connected(sock) => sock,
        Dialed::Failed(end) | Dialed::Died(end) => return rep.end(CONN, *end),
        Dialed::Interrupted(outcome) => {
            return rep.end(CONN, connection::interrupted_end(outcome));
        }
    };
    let peer_sock = match accept(&listener, rep, &mut lp)? {
        Ok(sock) => sock,
        Err(outcome) => return rep.end(CONN, connection::interrupted_end(outcome)),
    };
    // One connection is all the lab follows; a probe that meets no socket later is
    // answered with RST by the kernel whether or not this is still listening.
    drop(listener);
    peer_sock
        .set_nonblocking(true)
        .map_err(RunError::io("make the lab's peer socket non-blocking"))?;

    let now = rep.clock.now();
    let (mut conn, events) = Session::start(sock, now, &connection::plan(&connect))
        .map_err(|(e, _)| e)
        .map_err(RunError::socket(
            "read the settings of the connection to",
            &connect.target,
        ))?;
    let (peer, peer_events) = Session::start(
        peer_sock,
        now,
        &Plan {
            answer_pings: true,
            ..Plan::default()
        },
    )
    .map_err(|(e, _)| e)
    .map_err(RunError::io("follow the lab's peer socket"))?;
    let mut lab = Lab {
        cfg,
        fault_at: if cfg.trigger == Trigger::Never {
            None
        } else {
            cfg.fault_at
        },
        arming: Arming::new(
            cfg.trigger,
            cfg.answers_before_fault,
            cfg.fault_at.is_none(),
        ),
        restore_at: None,
        injected: None,
        peer: Some(peer),
        peer_reading: true,
    };
    lab.watch_connector(now, &events);
    events.emit(rep, CONN)?;
    if cfg.both {
        peer_events.emit(rep, PEER)?;
    }
    let end = follow(&mut lab, &mut conn, rep, &mut lp)?;
    if let Some(mut peer) = lab.peer.take()
        && cfg.both
    {
        let mut events = Events::new();
        let now = rep.clock.now();
        let end = peer.finish(
            now,
            Outcome::Alive,
            "the lab ended".to_string(),
            &mut events,
        );
        events.emit(rep, PEER)?;
        rep.emit(PEER, EventKind::End(end))?;
    }
    rep.end(CONN, lab.predicted(end, conn.last_contact()))
}

/// The lab's event loop: both sessions, the fault and `--for`, until the connector
/// ends. Returns the connector's `end` (not yet emitted).
fn follow(
    lab: &mut Lab<'_>,
    conn: &mut Session,
    rep: &mut Reporter,
    lp: &mut EventLoop<'_>,
) -> Result<EndFacts, RunError> {
    let run_for = lab.cfg.connect.run_for;
    let stop_at = run_for.map(|d| rep.clock.now().saturating_add(d));
    lp.watch(conn.fd(), CONN, false)?;
    if let Some(peer) = &lab.peer {
        lp.watch(peer.fd(), PEER, false)?;
    }
    loop {
        let now = rep.clock.now();
        let conn_wake = conn.next_wake(now);
        let peer_wake = lab.peer.as_ref().and_then(|p| p.next_wake(now));
        let fault_wake = lab.fault_at.filter(|_| lab.injected.is_none());
        let wake = [conn_wake, peer_wake, fault_wake, lab.restore_at, stop_at]
            .into_iter()
            .flatten()
            .min();
        let woke = lp.wait(&rep.clock, wake)?;
        let now = rep.clock.now();

        if let Woke::Signal(outcome) = woke {
            let mut events = Events::new();
            let end = conn.finish(now, outcome, stop_message(outcome, None), &mut events);
            events.emit(rep, CONN)?;
            return Ok(end);
        }

        // The peer first: what it reads (a PING) it answers in the same pass.
        let peer_ready = lp.is_ready(PEER) && lab.peer_reading;
        let peer_due = peer_wake.is_some_and(|w| now >= w);
        if let Some(peer) = lab.peer.as_mut()
            && (peer_ready || peer_due)
        {
            let mut events = Events::new();
            let mut end = None;
            if peer_ready {
                end = peer.on_ready(now, &mut events);
            }
            if end.is_none() && peer_due {
                end = peer.on_wake(now, &mut events);
            }
            if lab.cfg.both {
                events.emit(rep, PEER)?;
            }
            if let Some(end) = end {
                if let Some(peer) = lab.peer.take() {
                    lp.unwatch(peer.fd());
                }
                if lab.cfg.both {
                    rep.emit(PEER, EventKind::End(end))?;
                }
            }
        }

        let mut events = Events::new();
        let mut end = None;
        if lp.is_ready(CONN) {
            end = conn.on_ready(now, &mut events);
        }
        if end.is_none() && conn_wake.is_some_and(|w| now >= w) {
            end = conn.on_wake(now, &mut events);
        }
        lab.watch_connector(now, &events);
        events.emit(rep, CONN)?;
        if let Some(end) = end {
            return Ok(end);
        }

        if lab.injected.is_none() && lab.fault_at.is_some_and(|at| now >= at) {
            lab.inject(now, conn, lp, rep)?;
            // Sample at once: a FIN or RST is already there, and a send plan
            // starting now writes its first bytes.
            let mut events = Events::new();
            let end = conn.on_wake(now, &mut events);
            events.emit(rep, CONN)?;
            if let Some(end) = end {
                return Ok(end);
            }
        }

        if lab.restore_at.is_some_and(|at| now >= at) {
            lab.restore_at = None;
            lab.link(true)?;
            rep.emit(
                CONN,
                EventKind::Fault {
                    scenario: lab.cfg.scenario.name,
                    action: "loopback link up again",
                },
            )?;
        }

        if stop_at.is_some_and(|s| now >= s) {
            let mut events = Events::new();
            let message = format!(
                "{} with the peer alive",
                stop_message(Outcome::Alive, run_for)
            );
            let end = conn.finish(now, Outcome::Alive, message, &mut events);
            events.emit(rep, CONN)?;
            return Ok(end);
        }
    }
}
