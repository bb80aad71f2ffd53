//! Options every running command shares: `--for`, output format, timestamps,
//! and the `--expect`/`--within` assertions.

use std::time::Duration;

use super::duration::{parse_duration, validate_positive};
use super::{ConfigError, invalid};
use crate::cli::{OutputArgs, RunArgs};
use crate::model::event::Outcome;
use crate::model::expect::Expectation;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Human,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timestamps {
    Relative,
    Absolute,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunConfig {
    pub run_for: Option<Duration>,
    pub format: Format,
    pub quiet: bool,
    /// `--verbose`: every event in full in the human view.
    pub verbose: bool,
    pub timestamps: Timestamps,
    pub expect: Expectation,
}
impl RunConfig {
    /// A command that runs once and reports (`tune`): no --for, no --expect.
    pub fn once(format: Format) -> RunConfig {
        RunConfig {
            run_for: None,
            format,
            quiet: false,
            verbose: false,
            timestamps: Timestamps::Relative,
            expect: Expectation::default(),
        }
    }

    pub fn from_args(args: &RunArgs) -> Result<Self, ConfigError> {
        Ok(RunConfig {
            run_for: args
                .for_
                .as_deref()
                .map(|v| validate_positive("--for", v))
                .transpose()?,
            expect: Expectation {
                outcome: args
                    .expect
                    .expect
                    .as_deref()
                    .map(validate_expect)
                    .transpose()?,
                ..validate_within(args.expect.within.as_deref())?
            },
            ..RunConfig::from_output(&args.output)?
        })
    }

    /// A command that ends by itself and judges no connection's end (`idle-limit`):
    /// only what it prints.
    pub fn from_output(args: &OutputArgs) -> Result<Self, ConfigError> {
        Ok(RunConfig {
            run_for: None,
            format: if args.json {
                Format::Json
            } else {
                Format::Human
            },
            quiet: args.quiet,
            verbose: args.verbose,
            timestamps: validate_timestamps(&args.timestamps)?,
            expect: Expectation::default(),
        })
    }
}
pub fn validate_expect(value: &str) -> Result<Outcome, ConfigError> {
    Outcome::from_name(value).ok_or_else(|| {
        let names: Vec<&str> = Outcome::CONNECTION_OUTCOMES
            .iter()
            .map(|o| o.name())
            .collect();
        invalid(
            "--expect",
            value,
            format!("not an outcome ({})", names.join(", ")),
        )
    })
}

/// `MIN..MAX`, either side optional: `3s..5s`, `..5s`, `3s..`.
pub fn validate_within(value: Option<&str>) -> Result<Expectation, ConfigError> {
    const FLAG: &str = "--within";
    let Some(value) = value else {
        return Ok(Expectation::default());
    };
    let (min, max) = value.split_once("..").ok_or_else(|| {
        invalid(
            FLAG,
            value,
            "expected MIN..MAX, e.g. 3s..5s (either may be left out)",
        )
    })?;
    if min.trim().is_empty() && max.trim().is_empty() {
        return Err(invalid(
            FLAG,
            value,
            "give at least one of MIN and MAX, e.g. 3s..5s",
        ));
    }
    let bound = |text: &str| -> Result<Option<Duration>, ConfigError> {
        if text.trim().is_empty() {
            return Ok(None);
        }
        parse_duration(text)
            .map(Some)
            .map_err(|why| invalid(FLAG, value, format!("'{text}' is {why}")))
    };
    let (min, max) = (bound(min)?, bound(max)?);
    if let (Some(lo), Some(hi)) = (min, max)
        && lo > hi
    {
        return Err(invalid(FLAG, value, "MIN is above MAX"));
    }
    Ok(Expectation {
        outcome: None,
        min,
        max,
    })
}

pub fn validate_timestamps(value: &str) -> Result<Timestamps, ConfigError> {
    match value {
        "rel" => Ok(Timestamps::Relative),
        "abs" => Ok(Timestamps::Absolute),
        _ => Err(invalid("--timestamps", value, "must be rel or abs")),
    }
}
