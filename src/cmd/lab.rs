//! `lab list`, `lab SCENARIO` and `demo`: prints the catalogue of `model::lab`, or
//! builds the reporter and signals, converts the flags into [`LabOptions`] and runs
//! a scenario with [`crate::engine::lab`].

use crate::config::LabConfig;
use crate::engine::event_loop::Signals;
use crate::engine::lab::{self, LabOptions};
use crate::engine::run::{Clock, Reporter, RunError};
use crate::model::event::{EndFacts, Finished};
use crate::model::lab::SCENARIOS;

/// `lab list`: the catalogue, one scenario per paragraph (or JSON Lines).
pub fn list(json: bool) -> Result<Finished, RunError> {
    let mut text = String::new();
    for s in SCENARIOS {
        if json {
            let line = serde_json::json!({
                "scenario": s.name,
                "stands_for": s.stands_for,
                "fault": s.fault,
                "when": s.trigger.describe(1),
                "outcome": s.expect.name(),
            });
            text.push_str(&format!("{line}\n"));
        } else {
            text.push_str(&format!(
                "{:<12} {}\n{:<12} fault: {}, {}; ends {}\n",
                s.name,
                s.stands_for,
                "",
                s.fault,
                s.trigger.describe(1),
                s.expect.name()
            ));
        }
    }
    crate::cmd::print_text(text.as_bytes())
}

/// What the engine needs of `lab`'s and `demo`'s flags (the rest is the reporter's).
pub fn options(cfg: &LabConfig) -> LabOptions {
    LabOptions {
        scenario: cfg.scenario,
        connect: crate::cmd::connect::options(&cfg.connect),
        send_at_fault: cfg.send_at_fault.clone(),
        trigger: cfg.trigger,
        fault_at: cfg.fault_at,
        answers_before_fault: cfg.answers_before_fault,
        both: cfg.both,
    }
}

/// `lab SCENARIO` and `demo`: runs the scenario in the private network namespace
/// [`cmd::prepare`] entered while this was the process's only thread.
///
/// [`cmd::prepare`]: crate::cmd::prepare
pub fn run_private(cfg: &LabConfig, clock: Clock) -> Result<EndFacts, RunError> {
    let signals = Signals::install()?;
    let mut rep = Reporter::for_run(clock, &cfg.connect.run, cfg.both);
    lab::run(&options(cfg), &mut rep, &signals)
}
