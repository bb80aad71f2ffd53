//! How a connection ended ([`Outcome`]) and how the process exits ([`Exit`]): the
//! one table of exit codes in the product contract. `--help`'s exit-code text is
//! generated from [`Exit::HELP`], so the numbers are written only in [`Exit::code`].
//! [`classify_errno`] maps the kernel's errno on an established connection to an
//! outcome.

use nix::errno::Errno;
use serde::Serialize;

/// How one connection (or a run that followed connections) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Alive,
    /// `idle-limit`: the path's idle limit was found (a measurement, not a
    /// connection that stayed alive; exits 0 like `alive`).
    LimitFound,
    ConnectFailed,
    Eof,
    Reset,
    Timeout,
    Unreachable,
    HeartbeatTimeout,
    /// SIGINT.
    Interrupted,
    /// SIGTERM: named "interrupted" like SIGINT, but exits differently.
    Terminated,
    /// SIGHUP (the terminal or the session went away): ends like SIGTERM, with
    /// its own exit code.
    HungUp,
    /// tcpalive could not follow the connection (an I/O error of its own).
    Error,
    /// `watch`: the evidence seen from outside allows more than one end (the end
    /// line lists them); never reported as one of them.
    Ambiguous,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Alive => "alive",
            Outcome::LimitFound => "limit-found",
            Outcome::Error => "error",
            Outcome::ConnectFailed => "connect-failed",
            Outcome::Eof => "eof",
            Outcome::Reset => "reset",
            Outcome::Timeout => "timeout",
            Outcome::Unreachable => "unreachable",
            Outcome::HeartbeatTimeout => "heartbeat-timeout",
            Outcome::Interrupted | Outcome::Terminated | Outcome::HungUp => "interrupted",
            Outcome::Ambiguous => "ambiguous",
        }
    }

    /// A signal stopped the run (SIGINT, SIGTERM or SIGHUP).
    pub fn is_signal(self) -> bool {
        matches!(
            self,
            Outcome::Interrupted | Outcome::Terminated | Outcome::HungUp
        )
    }

    /// All outcomes a connection can end with, for `--expect` parsing and help text.
    pub const CONNECTION_OUTCOMES: [Outcome; 10] = [
        Outcome::Alive,
        Outcome::Eof,
        Outcome::Reset,
        Outcome::Timeout,
        Outcome::Unreachable,
        Outcome::HeartbeatTimeout,
        Outcome::ConnectFailed,
        Outcome::Interrupted,
        Outcome::Error,
        Outcome::Ambiguous,
    ];

    pub fn from_name(name: &str) -> Option<Outcome> {
        Outcome::CONNECTION_OUTCOMES
            .into_iter()
            .find(|o| o.name() == name)
    }
}

impl Serialize for Outcome {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// How the process exits: a connection's outcome, or a verdict about the run itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Outcome(Outcome),
    /// tcpalive itself failed (bind failed, an I/O error of its own).
    Error,
    /// Bad arguments.
    Usage,
    /// `--expect`/`--within` were met, whatever the outcome.
    ExpectMet,
    /// `--expect`/`--within` were not met.
    ExpectFailed,
    /// stdout went away (`| head -1`): nobody is left to tell, so end quietly.
    OutputClosed,
    /// Help, version, completions or a man page was printed.
    Done,
    /// `tune`: some sockets could not be changed (the others were).
    TunePartial,
}

impl Exit {
    /// The exit code: the only place the numbers of the product contract are written.
    pub fn code(self) -> u8 {
        match self {
            Exit::Outcome(o) => match o {
                Outcome::Alive | Outcome::LimitFound => 0,
                Outcome::Error => 1,
                Outcome::ConnectFailed => 3,
                Outcome::Eof => 4,
                Outcome::Reset => 5,
                Outcome::Timeout => 6,
                Outcome::Unreachable => 7,
                Outcome::HeartbeatTimeout => 8,
                Outcome::Ambiguous => 10,
                Outcome::HungUp => 129,
                Outcome::Interrupted => 130,
                Outcome::Terminated => 143,
            },
            Exit::Error => 1,
            Exit::Usage => 2,
            Exit::ExpectMet | Exit::OutputClosed | Exit::Done => 0,
            Exit::ExpectFailed => 9,
            Exit::TunePartial => 11,
        }
    }

    /// The rows of `--help`'s exit-code table (and the README's), in code order.
    pub const HELP: [(Exit, &'static str, &'static str); 13] = [
        (
            Exit::Outcome(Outcome::Alive),
            "alive",
            "--for elapsed with the peer alive, or --expect was met",
        ),
        (
            Exit::Error,
            "error",
            "tcpalive itself failed (bind failed, I/O error of its own)",
        ),
        (Exit::Usage, "usage", "bad arguments"),
        (
            Exit::Outcome(Outcome::ConnectFailed),
            "connect-failed",
            "refused, no route, connect timeout, name not resolved",
        ),
        (
            Exit::Outcome(Outcome::Eof),
            "eof",
            "peer closed cleanly (FIN)",
        ),
        (
            Exit::Outcome(Outcome::Reset),
            "reset",
            "ECONNRESET: peer aborted, or rebooted and answered with RST",
        ),
        (
            Exit::Outcome(Outcome::Timeout),
            "timeout",
            "ETIMEDOUT: keepalive probes or user timeout gave up",
        ),
        (
            Exit::Outcome(Outcome::Unreachable),
            "unreachable",
            "EHOSTUNREACH / ENETUNREACH on an established connection",
        ),
        (
            Exit::Outcome(Outcome::HeartbeatTimeout),
            "heartbeat-timeout",
            "application heartbeat unanswered within its timeout",
        ),
        (
            Exit::ExpectFailed,
            "expect-failed",
            "--expect / --within not met",
        ),
        (
            Exit::Outcome(Outcome::Ambiguous),
            "ambiguous",
            "watch: the evidence from outside allows more than one end (listed)",
        ),
        (
            Exit::TunePartial,
            "tune-partial",
            "tune: some sockets could not be changed (each says why)",
        ),
        (
            Exit::Outcome(Outcome::Interrupted),
            "interrupted",
            "SIGINT; the summary is still printed",
        ),
    ];

    /// The exit-code table as `--help` prints it, generated from [`Exit::HELP`].
    pub fn help_text() -> String {
        let mut text = String::from("Exit codes:\n");
        for (exit, name, meaning) in Exit::HELP {
            text.push_str(&format!("  {:<4} {name:<18} {meaning}\n", exit.code()));
        }
        // The other signals that end a run share the name "interrupted".
        for (outcome, meaning) in [
            (Outcome::Terminated, "SIGTERM; the summary is still printed"),
            (
                Outcome::HungUp,
                "SIGHUP, ended like SIGTERM (SIGUSR1, SIGUSR2, SIGALRM are ignored)",
            ),
        ] {
            text.push_str(&format!(
                "  {:<4} {:<18} {meaning}\n",
                Exit::Outcome(outcome).code(),
                outcome.name()
            ));
        }
        text
    }
}

/// The classification of an errno that ended an established connection.
pub fn classify_errno(errno: i32) -> Outcome {
    match Errno::from_raw(errno) {
        Errno::ECONNRESET | Errno::EPIPE | Errno::ECONNABORTED => Outcome::Reset,
        Errno::ETIMEDOUT => Outcome::Timeout,
        Errno::EHOSTUNREACH | Errno::ENETUNREACH | Errno::EHOSTDOWN | Errno::ENETDOWN => {
            Outcome::Unreachable
        }
        _ => Outcome::Error,
    }
}

/// The symbolic name of an errno ("ETIMEDOUT"), for the timeline and JSON.
pub fn errno_name(errno: i32) -> String {
    match Errno::from_raw(errno) {
        Errno::UnknownErrno => format!("errno {errno}"),
        known => format!("{known:?}"),
    }
}

/// The C library's text for an errno ("Connection timed out").
pub fn errno_text(errno: i32) -> String {
    Errno::from_raw(errno).desc().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_match_the_contract() {
        let table = [
            (Exit::Outcome(Outcome::Alive), 0),
            (Exit::Outcome(Outcome::LimitFound), 0),
            (Exit::Outcome(Outcome::Error), 1),
            (Exit::Error, 1),
            (Exit::Usage, 2),
            (Exit::Outcome(Outcome::ConnectFailed), 3),
            (Exit::Outcome(Outcome::Eof), 4),
            (Exit::Outcome(Outcome::Reset), 5),
            (Exit::Outcome(Outcome::Timeout), 6),
            (Exit::Outcome(Outcome::Unreachable), 7),
            (Exit::Outcome(Outcome::HeartbeatTimeout), 8),
            (Exit::ExpectFailed, 9),
            (Exit::Outcome(Outcome::Ambiguous), 10),
            (Exit::ExpectMet, 0),
            (Exit::OutputClosed, 0),
            (Exit::Done, 0),
            (Exit::TunePartial, 11),
            (Exit::Outcome(Outcome::Interrupted), 130),
            (Exit::Outcome(Outcome::Terminated), 143),
            (Exit::Outcome(Outcome::HungUp), 129),
        ];
        for (exit, code) in table {
            assert_eq!(exit.code(), code, "{exit:?}");
        }
    }

    #[test]
    fn help_text_lists_every_code_once() {
        let text = Exit::help_text();
        for code in [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 129, 130, 143] {
            let rows = text
                .lines()
                .filter(|l| l.trim_start().starts_with(&format!("{code} ")))
                .count();
            assert_eq!(rows, 1, "code {code} in:\n{text}");
        }
    }

    #[test]
    fn errno_classification() {
        let table = [
            (libc::ETIMEDOUT, Outcome::Timeout),
            (libc::ECONNRESET, Outcome::Reset),
            (libc::EPIPE, Outcome::Reset),
            (libc::EHOSTUNREACH, Outcome::Unreachable),
            (libc::ENETUNREACH, Outcome::Unreachable),
            (libc::EBADF, Outcome::Error),
        ];
        for (errno, outcome) in table {
            assert_eq!(classify_errno(errno), outcome, "{}", errno_name(errno));
        }
    }

    #[test]
    fn errno_names_and_texts() {
        assert_eq!(errno_name(libc::ETIMEDOUT), "ETIMEDOUT");
        assert_eq!(errno_name(libc::EHOSTUNREACH), "EHOSTUNREACH");
        assert_eq!(errno_name(9999), "errno 9999");
        assert_eq!(errno_text(libc::ETIMEDOUT), "Connection timed out");
    }

    #[test]
    fn outcome_names_round_trip() {
        for o in Outcome::CONNECTION_OUTCOMES {
            assert_eq!(Outcome::from_name(o.name()), Some(o));
        }
        assert_eq!(Outcome::from_name("dead"), None);
    }
}
