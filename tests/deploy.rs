//! The fleet kit under deploy/: the Kubernetes DaemonSet parses (python3's YAML
//! loader, the same YAML 1.1 reading kubectl does), grants exactly the
//! privileges `watch` needs, and runs a command line that `watch` itself accepts
//! (tcpalive's own parser and validation, so a renamed or removed flag fails
//! here). The Prometheus rules are checked by `promtool check rules` and `promtool
//! test rules` in .ci/run; that they name only exported series is a unit test in
//! src/report/prometheus.rs. Without python3 + PyYAML the test is reported
//! SKIPPED; under `TCPALIVE_REQUIRE_TOOLCHAINS=1` (set by .ci/run) it fails.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;
use tcpalive::cli::Command as Cli;
use tcpalive::config::{Config, MetricsTarget};

const MANIFEST: &str = "deploy/kubernetes/tcpalive-watch.daemonset.yaml";

/// The manifest's documents as JSON, or why they cannot be read here.
fn load_yaml(path: &Path) -> Result<Vec<Value>, String> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml\n\
             json.dump(list(yaml.safe_load_all(open(sys.argv[1]))), sys.stdout)",
        ])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("python3: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("No module named 'yaml'") {
        return Err("python3 has no yaml module (Debian: python3-yaml)".to_string());
    }
    assert!(
        out.status.success(),
        "{} does not parse: {stderr}",
        path.display()
    );
    Ok(serde_json::from_slice(&out.stdout).expect("python3 printed JSON"))
}

fn skip(why: &str) {
    if std::env::var("TCPALIVE_REQUIRE_TOOLCHAINS").is_ok_and(|v| v == "1") {
        panic!("{MANIFEST} cannot be checked and TCPALIVE_REQUIRE_TOOLCHAINS=1: {why}");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED {MANIFEST}: {why}");
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Kubernetes expands `$(NAME)` in args from the container's env; a value taken
/// from the pod's fields (status.hostIP) is given an address of the test range.
fn expand(arg: &str, env: &[Value]) -> String {
    let mut out = arg.to_string();
    for e in env {
        let name = e["name"].as_str().expect("env entry has a name");
        let value = match e["value"].as_str() {
            Some(v) => v.to_string(),
            None => {
                assert_eq!(
                    e["valueFrom"]["fieldRef"]["fieldPath"], "status.hostIP",
                    "only the node's address is taken from the pod: {e}"
                );
                "198.18.0.1".to_string()
            }
        };
        out = out.replace(&format!("$({name})"), &value);
    }
    assert!(
        !out.contains("$("),
        "{arg}: a variable the env does not define"
    );
    out
}

#[test]
fn daemonset_parses_grants_only_what_watch_needs_and_runs_a_valid_watch() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(MANIFEST);
    let docs = match load_yaml(&path) {
        Ok(docs) => docs,
        Err(why) => return skip(&why),
    };
    assert_eq!(docs.len(), 1, "one document: {docs:?}");
    let ds = &docs[0];
    assert_eq!(ds["apiVersion"], "apps/v1");
    assert_eq!(ds["kind"], "DaemonSet");
    let spec = &ds["spec"];
    assert_eq!(
        spec["selector"]["matchLabels"], spec["template"]["metadata"]["labels"],
        "the selector must select the pods it makes"
    );
    let pod = &spec["template"]["spec"];
    assert_eq!(
        pod["hostNetwork"], true,
        "sock_diag sees the host's connections"
    );
    assert_eq!(pod["hostPID"], true, "owners are the host's processes");
    let containers = pod["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1);
    let c = &containers[0];

    let sc = &c["securityContext"];
    assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"]);
    let mut add = strings(&sc["capabilities"]["add"]);
    add.sort_unstable();
    assert_eq!(add, ["NET_ADMIN", "SYS_PTRACE"], "nothing more");
    assert_ne!(sc["privileged"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["readOnlyRootFilesystem"], true, "watch writes no file");

    // The command line, as the kubelet passes it, through tcpalive's own parser
    // and validation.
    assert!(
        c.get("command").is_none(),
        "the image's entry point is tcpalive"
    );
    let env = c["env"].as_array().cloned().unwrap_or_default();
    let args: Vec<String> = c["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| expand(a.as_str().expect("args are strings"), &env))
        .collect();
    let argv = std::iter::once("tcpalive".to_string()).chain(args.iter().cloned());
    let cli = tcpalive::parse(argv.map(Into::into))
        .unwrap_or_else(|code| panic!("tcpalive rejects {args:?} (exit {code})"));
    assert!(matches!(cli.command, Cli::Watch(_)), "{args:?}");
    let config = Config::from_command(&cli.command)
        .unwrap_or_else(|e| panic!("watch rejects {args:?}: {e}"));
    let Config::Watch(w) = config else {
        panic!("not a watch: {args:?}")
    };
    let Some(MetricsTarget::Serve(addr)) = w.metrics else {
        panic!("the DaemonSet serves metrics: {args:?}")
    };
    assert_eq!(
        addr.host, "198.18.0.1",
        "metrics listen on the node's address only, not on every host interface"
    );

    // The port the pod declares, probes and advertises is the one watch serves.
    let ports = c["ports"].as_array().expect("ports");
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0]["containerPort"], addr.port);
    let name = &ports[0]["name"];
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], *name);
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/metrics");
    let annotations = &spec["template"]["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/port"], addr.port.to_string());
    assert_eq!(annotations["prometheus.io/path"], "/metrics");
}
