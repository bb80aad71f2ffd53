//! `demo`: a loopback listener and connector in one process, no root needed. The
//! connector probes every second and sees each probe answered; after 3.5 s the
//! listener aborts the connection, so the timeline ends with a peer reset.

use std::time::Duration;

use crate::cli::DemoArgs;
use crate::config::{
    ConnectConfig, Endpoint, Fault, Format, KeepaliveConfig, ListenConfig, RunConfig, Timestamps,
};
use crate::engine::event_loop::Signals;
use crate::engine::run::{Clock, Reporter, RunError};
use crate::model::event::EndFacts;
use crate::model::expect::Expectation;
use crate::report::{self, Discard};

pub fn run(args: &DemoArgs, rep_clock: Clock, signals: &Signals) -> Result<EndFacts, RunError> {
    let run = RunConfig {
        run_for: None,
        format: if args.json {
            Format::Json
        } else {
            Format::Human
        },
        quiet: false,
        timestamps: Timestamps::Relative,
        expect: Expectation::default(),
    };
    let peer = ListenConfig {
        bind: Endpoint {
            host: "127.0.0.1".to_string(),
            port: 0,
        },
        keepalive: KeepaliveConfig::default(),
        run: RunConfig {
            run_for: Some(Duration::from_secs(30)),
            ..run.clone()
        },
        once: true,
        max_conns: 1,
        fault: Some(Fault::Reset(Duration::from_millis(3500))),
        heartbeat: None,
        mute: false,
    };
    let listener = super::listen::bind(&peer)?;
    let port = listener
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .map(|a| a.port())
        .unwrap_or_default();
    let server = std::thread::spawn(move || {
        let mut quiet = Reporter::new(Clock::start(), Box::new(Discard), Expectation::default());
        super::listen::serve(listener, &peer, &mut quiet, None)
    });
    let cfg = ConnectConfig {
        target: Endpoint {
            host: "127.0.0.1".to_string(),
            port,
        },
        keepalive: KeepaliveConfig {
            enabled: true,
            idle_s: Some(1),
            intvl_s: Some(1),
            cnt: Some(3),
            user_timeout: None,
        },
        run: run.clone(),
        connect_timeout: Duration::from_secs(2),
        send: None,
        heartbeat: None,
        reconnect: None,
    };
    let mut rep = Reporter::new(
        rep_clock,
        report::sink_for(&run, false),
        Expectation::default(),
    );
    let outcome = super::connect::run(&cfg, &mut rep, signals)?;
    // The listener ends by itself after its fault; its result only matters if the
    // connector could not even start.
    let _ = server.join();
    Ok(outcome)
}
