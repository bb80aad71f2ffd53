//! `watch`: builds the reporter (the timeline renderer, teed with the Prometheus
//! sink under `--metrics`/`--metrics-file`) and the signals, converts the
//! validated command line into [`WatchOptions`], and runs [`engine::watch`].

use crate::config::{MetricsTarget as MetricsConfig, WatchConfig};
use crate::engine;
use crate::engine::event_loop::Signals;
use crate::engine::run::{Clock, Reporter, RunError};
use crate::engine::watch::metrics::{self, MetricsTarget};
use crate::engine::watch::{PeerOption, WatchOptions};
use crate::model::event::{EndFacts, Sink};
use crate::report::Tee;

pub fn run(cfg: &WatchConfig, clock: Clock) -> Result<EndFacts, RunError> {
    let signals = Signals::install()?;
    let mut rep = match &cfg.metrics {
        Some(target) => {
            let sinks: Vec<Box<dyn Sink>> = vec![
                crate::report::sink_for(&cfg.run, true, crate::engine::output::stdout()),
                Box::new(metrics::start(&metrics_target(target))?),
            ];
            Reporter::new(clock, Box::new(Tee(sinks)), cfg.run.expect.clone())
        }
        None => Reporter::for_run(clock, &cfg.run, true),
    };
    engine::watch::run(&options(cfg), &mut rep, &signals)
}

/// What the engine follows, from the command line.
fn options(cfg: &WatchConfig) -> WatchOptions {
    WatchOptions {
        port: cfg.port,
        peer: cfg.peer.as_ref().map(|p| PeerOption {
            host: p.host.clone(),
            port: p.port,
        }),
        pid: cfg.pid,
        interval: cfg.interval,
        run_for: cfg.run.run_for,
        dump_once: cfg.dump_once,
    }
}

fn metrics_target(target: &MetricsConfig) -> MetricsTarget {
    match target {
        MetricsConfig::Serve(endpoint) => MetricsTarget::Serve {
            host: endpoint.host.clone(),
            port: endpoint.port,
        },
        MetricsConfig::File(path) => MetricsTarget::File(path.clone()),
    }
}
