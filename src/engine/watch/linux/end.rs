//! The end of a followed connection: it left ESTABLISHED, vanished from the dump
//! or its own look-up found it gone (its four-tuple is looked up, and it waits a
//! little for its destroy
//! notification), or was destroyed (sock_diag's notification carries its final
//! counters); the evidence collected is judged by [`verdict::judge`], including
//! whether the owner still holds a socket that left the table.

use std::time::Duration;

use super::follow::Conn;
use super::{DESTROY_GRACE, RUN, Watch, diag_error};
use crate::engine::run::{Reporter, RunError};
use crate::model::event::{EventKind, Outcome};
use crate::model::verdict::{self, Certainty, Destroyed, Evidence};
use crate::model::watch;
use crate::sys::procfs;
use crate::sys::sockdiag::{DiagEntry, SockDiag};

/// Jiffies and the readings' millisecond rounding around a predicted give-up.
const GIVE_UP_TOLERANCE: Duration = Duration::from_millis(20);

/// The final report of a destroyed socket.
fn destroyed_facts(e: &DiagEntry) -> Destroyed {
    watch::destroyed(e.info.unwrap_or_default(), e.peer.port(), e.recv_queue)
}

impl Watch {
    /// Reads the queued destroy notifications; each one of a watched socket ends it.
    pub(super) fn destroyed(&mut self, rep: &mut Reporter, now: Duration) -> Result<(), RunError> {
        let Some(listener) = self.destroy.as_mut() else {
            return Ok(());
        };
        let mut found = Vec::new();
        let conns = &self.conns;
        let lost = listener
            .drain(|e| {
                if conns.contains_key(&e.cookie) {
                    found.push(*e);
                }
            })
            .map_err(diag_error("read sock_diag destroy notifications"))?;
        if lost && !self.destroy_lost {
            // Said once: on a host with heavy socket churn it can recur.
            self.destroy_lost = true;
            rep.emit(
                RUN,
                EventKind::Warning {
                    message: "destroy notifications were lost (the receive buffer overflowed): \
                              some ends are judged without them"
                        .to_string(),
                },
            )?;
        }
        for e in found {
            if let Some(conn) = self.conns.get_mut(&e.cookie)
                && conn.gone_at.is_none()
            {
                // Destroyed before a dump saw it leave: now is when it ended.
                conn.gone_at = Some(now);
                conn.clues.looked_up(
                    lookup_state(&mut self.diag, conn.last.local, conn.last.peer),
                    lookup_state(&mut self.diag, conn.last.peer, conn.last.local),
                );
            }
            self.judge(rep, e.cookie, Some(destroyed_facts(&e)))?;
        }
        Ok(())
    }

    /// The socket is no longer in the dump: look its four-tuple up (TIME_WAIT says
    /// it closed first; the peer's socket, when on this host, says the same of the
    /// peer), then wait a little for its destroy notification.
    pub(super) fn vanished(
        &mut self,
        rep: &mut Reporter,
        now: Duration,
        cookie: u64,
    ) -> Result<(), RunError> {
        let Some(conn) = self.conns.get_mut(&cookie) else {
            return Ok(());
        };
        conn.gone_at = Some(now);
        conn.clues.looked_up(
            lookup_state(&mut self.diag, conn.last.local, conn.last.peer),
            lookup_state(&mut self.diag, conn.last.peer, conn.last.local),
        );
        // Without destroy notifications nothing better is coming: judge now.
        if conn.clues.decided() || self.destroy.is_none() || self.gave_up_when_due(cookie, now) {
            return self.judge(rep, cookie, None);
        }
        self.awaiting
            .push((now.saturating_add(DESTROY_GRACE), cookie));
        Ok(())
    }

    /// Whether the socket left when the kernel's give-up was due (the probes the
    /// settings read allow were out, and the time had come): then nothing the
    /// destroy notification could add changes the end, so it is not held back
    /// until the owner closes the socket (socat was seen to take a second).
    fn gave_up_when_due(&self, cookie: u64, now: Duration) -> bool {
        let Some(conn) = self.conns.get(&cookie) else {
            return false;
        };
        let ev = self.evidence(conn, None, None, now);
        if !ev.left_when_due || ev.last.probes == 0 {
            return false;
        }
        let v = verdict::judge(&ev);
        v.outcome == Outcome::Timeout && v.certainty == Certainty::Certain
    }

    /// The evidence collected about a connection, for its verdict at `at`.
    fn evidence(
        &self,
        conn: &Conn,
        destroyed: Option<Destroyed>,
        owner_holds: Option<bool>,
        at: Duration,
    ) -> Evidence {
        // The kernel gives up at a timer firing, never before its nominal time.
        let left_when_due = conn.know.is_read()
            && !conn.know.stale
            && conn
                .timeline
                .gives_up_at()
                .is_some_and(|d| at.saturating_add(GIVE_UP_TOLERANCE) >= d);
        Evidence {
            left_when_due,
            ..conn
                .clues
                .evidence(destroyed, owner_holds, self.destroy.is_some(), conn.know)
        }
    }

    pub(super) fn judge(
        &mut self,
        rep: &mut Reporter,
        cookie: u64,
        destroyed: Option<Destroyed>,
    ) -> Result<(), RunError> {
        let at = self.conns.get(&cookie).and_then(|c| c.gone_at);
        let at = at.unwrap_or_else(|| rep.clock.now());
        self.judge_at(rep, cookie, destroyed, at)
    }

    /// Ends a connection with the verdict its evidence allows, detected at `at`.
    pub(super) fn judge_at(
        &mut self,
        rep: &mut Reporter,
        cookie: u64,
        destroyed: Option<Destroyed>,
        at: Duration,
    ) -> Result<(), RunError> {
        let Some(conn) = self.conns.remove(&cookie) else {
            return Ok(());
        };
        self.ended.insert(cookie);
        let owner_holds = match (&destroyed, &conn.owner, conn.gone_at) {
            (None, Some(o), Some(_)) => procfs::holds(o.pid, conn.last.inode),
            _ => None,
        };
        let evidence = self.evidence(&conn, destroyed, owner_holds, at);
        let end = watch::judged_end(&conn.timeline, at, verdict::judge(&evidence));
        self.owners.forget(conn.last.inode);
        self.tally.record(&rep.end(conn.id, end)?);
        Ok(())
    }
}

/// The state of the socket with this four-tuple, if the kernel has one.
fn lookup_state(
    diag: &mut SockDiag,
    local: std::net::SocketAddr,
    peer: std::net::SocketAddr,
) -> Option<u8> {
    diag.lookup(local, peer).ok().flatten().map(|e| e.state)
}
