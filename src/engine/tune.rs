//! `tune` on Linux: find the TCP sockets of a process and its descendants
//! (procfs for the inodes, sock_diag for state and addresses), duplicate each
//! through pidfd_getfd, read its settings, set the new ones all or nothing, and
//! read them back. One `tuned` event per socket, then the `end`.
//!
//! The work is linear in the number of sockets: each process's `/proc/PID/fd` is
//! read once into a map from socket inode to descriptor number, so a socket is
//! opened without searching the directory again. A signal is answered between
//! two sockets: the end then says how many were changed and how many were not
//! reached (a socket is changed all or nothing, never half).

use std::collections::HashMap;
use std::net::ToSocketAddrs;

use crate::config::TuneConfig;
use crate::engine::event_loop::Signals;
use crate::engine::run::{Reporter, RunError, stop_message};
use crate::model::event::{EndFacts, EventKind, Outcome, TuneFacts};
use crate::model::filter::AddressFilter;
use crate::model::outcome::Exit;
use crate::model::sample::TCP_ESTABLISHED;
use crate::model::tune;
use crate::sys::pidfd::{self, PidfdError};
use crate::sys::sockdiag::{DiagEntry, SockDiag};
use crate::sys::{self, nsenter, procfs, sysctl};

/// TCP_LISTEN (include/net/tcp_states.h).
const TCP_LISTEN: u8 = 10;

/// One socket to change: whose it is, under which descriptor number, and where it
/// goes.
struct Target {
    pid: u32,
    fd: i32,
    process: Option<String>,
    entry: DiagEntry,
}

pub fn run(cfg: &TuneConfig, rep: &mut Reporter, signals: &Signals) -> Result<EndFacts, RunError> {
    let filter = address_filter(cfg)?;
    let (targets, looked_at) = select(cfg, &filter)?;
    if let Some(signal) = signals.pending() {
        return rep.end(
            0,
            interrupted(cfg, signal, &Tally::default(), targets.len()),
        );
    }
    if targets.is_empty() {
        let end = EndFacts::new(
            Outcome::Error,
            None,
            nothing_matched(cfg, &looked_at),
            None,
            None,
        );
        return rep.end(0, end);
    }
    // The budget of a busy connection is its namespace's tcp_retries2, not ours.
    let ns = sysctl::of_netns_of(cfg.pid);
    let mut tally = Tally::default();
    for (i, t) in targets.iter().enumerate() {
        // Between two sockets: each is changed all or nothing.
        if let Some(signal) = signals.pending() {
            return rep.end(0, interrupted(cfg, signal, &tally, targets.len()));
        }
        let mut facts = tune_one(cfg, t, ns.retries2);
        facts.notes.extend(ns.not_theirs.clone());
        tally.count(&facts);
        rep.emit(i as u64 + 1, EventKind::Tuned(facts))?;
    }
    let total = targets.len();
    let message = format!(
        "{} {} of {total} socket(s); {} already as asked; {} could not be changed",
        verb(cfg),
        tally.changed,
        tally.unchanged,
        tally.failed,
    );
    let mut end = EndFacts::new(
        if tally.failed == 0 {
            Outcome::Alive
        } else {
            Outcome::Error
        },
        None,
        message,
        None,
        None,
    );
    if tally.failed > 0 {
        end.exit_code = if tally.failed == total {
            Exit::Error.code()
        } else {
            Exit::TunePartial.code()
        };
    }
    rep.end(0, end)
}

fn verb(cfg: &TuneConfig) -> &'static str {
    if cfg.dry_run {
        "would change"
    } else {
        "changed"
    }
}

/// What was done to the sockets reached so far.
#[derive(Default)]
struct Tally {
    changed: usize,
    unchanged: usize,
    failed: usize,
}

impl Tally {
    fn count(&mut self, facts: &TuneFacts) {
        if facts.error.is_some() {
            self.failed += 1;
        } else if facts.changed.is_empty() {
            self.unchanged += 1;
        } else {
            self.changed += 1;
        }
    }

    fn reached(&self) -> usize {
        self.changed + self.unchanged + self.failed
    }
}

/// The end of a run a signal stopped: every socket reached has its `tuned` event;
/// the others were not touched.
fn interrupted(cfg: &TuneConfig, signal: Outcome, tally: &Tally, total: usize) -> EndFacts {
    let message = format!(
        "{} after {} of {total} socket(s): {} {}; {} already as asked; {} could not be \
         changed; {} not touched",
        stop_message(signal, None),
        tally.reached(),
        verb(cfg),
        tally.changed,
        tally.unchanged,
        tally.failed,
        total.saturating_sub(tally.reached()),
    );
    EndFacts::new(signal, None, message, None, None)
}

fn address_filter(cfg: &TuneConfig) -> Result<AddressFilter, RunError> {
    let peer_ips = match &cfg.peer {
        Some(p) => Some(
            (p.host.as_str(), 0)
                .to_socket_addrs()
                .map_err(RunError::socket("resolve --peer", &p.host))?
                .map(|a| a.ip().to_canonical())
                .collect(),
        ),
        None => None,
    };
    Ok(AddressFilter {
        port: cfg.port,
        peer_ips,
        peer_port: cfg.peer.as_ref().and_then(|p| p.port),
    })
}

/// What the selection saw, for the message when nothing matched.
#[derive(Default)]
struct LookedAt {
    processes: usize,
    sockets: usize,
    tcp: usize,
}

/// The matching sockets of the process and its descendants.
fn select(cfg: &TuneConfig, filter: &AddressFilter) -> Result<(Vec<Target>, LookedAt), RunError> {
    // Socket inode -> (PID, descriptor number): built once, looked up per socket.
    let mut owner: HashMap<u32, (u32, i32)> = HashMap::new();
    let mut names: HashMap<u32, Option<String>> = HashMap::new();
    let mut looked = LookedAt::default();
    let proc_error = |e: procfs::ProcError| RunError::Io {
        op: "read the sockets of --pid",
        source: std::io::Error::other(e.to_string()),
    };
    procfs::check_pid_namespace(cfg.pid).map_err(proc_error)?;
    let root = procfs::socket_fds(cfg.pid).map_err(proc_error)?;
    let mut root = Some(root);
    for pid in std::iter::once(cfg.pid).chain(procfs::descendants(cfg.pid)) {
        let fds = match root.take() {
            Some(fds) => fds,
            // A descendant that exited meanwhile holds nothing.
            None => procfs::socket_fds(pid).unwrap_or_default(),
        };
        looked.processes += 1;
        looked.sockets += fds.len();
        for (inode, fd) in fds {
            owner.entry(inode).or_insert((pid, fd));
        }
    }
    let mut states = 1u32 << TCP_ESTABLISHED;
    if cfg.listening {
        states |= 1 << TCP_LISTEN;
    }
    // sock_diag answers for the namespace of the socket asking: open it in the
    // target's network namespace (a container, a lab namespace).
    let mut diag = nsenter::in_netns_of(cfg.pid, SockDiag::open)
        .map_err(RunError::io("enter the network namespace of --pid"))?
        .map_err(|e| RunError::Io {
            op: "open sock_diag",
            source: std::io::Error::other(e.to_string()),
        })?;
    let mut targets = Vec::new();
    diag.dump_all(states, cfg.port, |e| {
        let Some(&(pid, fd)) = owner.get(&e.inode) else {
            return;
        };
        looked.tcp += 1;
        let peer = (e.state != TCP_LISTEN).then_some(e.peer);
        if filter.matches(e.local, peer) {
            let process = names
                .entry(pid)
                .or_insert_with(|| procfs::process_name(pid))
                .clone();
            targets.push(Target {
                pid,
                fd,
                process,
                entry: *e,
            });
        }
    })
    .map_err(|e| RunError::Io {
        op: "dump the TCP sockets",
        source: std::io::Error::other(e.to_string()),
    })?;
    Ok((targets, looked))
}

fn nothing_matched(cfg: &TuneConfig, looked: &LookedAt) -> String {
    let which = if cfg.listening {
        "established or listening"
    } else {
        "established"
    };
    format!(
        "nothing to tune: PID {} and its {} descendant(s) hold {} socket(s), {} of them {which} \
         TCP{}",
        cfg.pid,
        looked.processes.saturating_sub(1),
        looked.sockets,
        looked.tcp,
        if cfg.port.is_some() || cfg.peer.is_some() {
            " with the given --port/--peer"
        } else {
            ""
        }
    )
}

/// Reads, changes (all or nothing) and reads back one socket.
fn tune_one(cfg: &TuneConfig, t: &Target, retries2: u32) -> TuneFacts {
    let e = &t.entry;
    let mut facts = TuneFacts {
        pid: t.pid,
        process: t.process.clone(),
        state: if e.state == TCP_LISTEN {
            "listening"
        } else {
            "established"
        },
        local: e.local,
        peer: (e.state != TCP_LISTEN).then_some(e.peer),
        before: None,
        after: None,
        changed: Vec::new(),
        dry_run: cfg.dry_run,
        error: None,
        notes: Vec::new(),
    };
    // The descriptor number from the scan, checked against the inode; searched
    // again only if it was closed and reused in between.
    let opened = match pidfd::open_socket_fd(t.pid, t.fd, e.inode) {
        Err(PidfdError::NotHeld { .. }) => pidfd::open_socket(t.pid, e.inode),
        other => other,
    };
    let dup = match opened {
        Ok(dup) => dup,
        Err(err) => {
            facts.error = Some(match err {
                PidfdError::NotHeld { .. } => format!("{err}: the socket vanished in between"),
                _ => err.to_string(),
            });
            return facts;
        }
    };
    let before = match pidfd::read_effective(&dup) {
        Ok(b) => b,
        Err((op, source)) => {
            facts.error = Some(format!("cannot {op}: {source}"));
            return facts;
        }
    };
    let wanted = tune::target(&before, &cfg.keepalive);
    let steps = tune::steps(&before, &wanted);
    facts.before = Some(before.facts(retries2));
    facts.changed = steps.iter().map(|s| s.option()).collect();
    if e.state != TCP_LISTEN {
        let in_flight = e.send_queue > 0 || e.info.is_some_and(|i| i.unacked > 0);
        facts.notes = tune::notes(&before, &wanted, &cfg.keepalive, in_flight, retries2);
    }
    if cfg.dry_run || steps.is_empty() {
        facts.after = Some(wanted.facts(retries2));
        return facts;
    }
    use std::os::fd::AsFd;
    if let Err(err) = sys::apply_steps(dup.as_fd(), &before, &wanted, &steps) {
        facts.error = Some(err.to_string());
    }
    // Read back what the socket holds now, whatever happened.
    facts.after = match pidfd::read_effective(&dup) {
        Ok(now) => Some(now.facts(retries2)),
        Err((op, source)) => {
            facts
                .error
                .get_or_insert(format!("cannot {op} after the change: {source}"));
            None
        }
    };
    facts
}
