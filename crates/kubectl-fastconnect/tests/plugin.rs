//! The plugin as a user runs it: a process with a kubeconfig, against the real control plane and
//! the sandbox over HTTP, once installed by krew and found by `kubectl` itself. Every run checks
//! that neither the API key nor the OCID appears in anything the plugin printed.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use fastconnect_operator::{
    consoleconnect::Port,
    controller::support_handoff,
    crd::{FastConnectConnection, Phase},
};
use fastconnect_test_support::{
    self as support, cluster,
    env::{Env, OCID, set},
    fixtures,
    helm::{self, Output},
    sandbox::{self, DEFAULT_COMPANY, METRO_HKG, METRO_LON, METRO_SIN, METRO_SYD, METRO_TYO},
};
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

const PLUGIN: &str = env!("CARGO_BIN_EXE_kubectl-fastconnect");

/// Runs the plugin binary with the test kubeconfig.
fn plugin(args: &[&str]) -> Output {
    run(Command::new(PLUGIN).args(args), None)
}

/// `plugin`, which must succeed; its stdout.
fn plugin_ok(args: &[&str]) -> String {
    let out = plugin(args);
    assert!(
        out.ok,
        "kubectl-fastconnect {args:?} failed:\n{}",
        out.stderr
    );
    out.stdout
}

/// Runs `command` with the test kubeconfig, feeding `stdin`, and checks that it printed no
/// Secret value.
fn run(command: &mut Command, stdin: Option<&str>) -> Output {
    use std::io::Write;
    command
        .env("KUBECONFIG", cluster::kubeconfig_path())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("the command starts");
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes()).expect("write stdin");
    }
    let out = child.wait_with_output().expect("the command ends");
    let out = Output {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    for secret in [sandbox::DEFAULT_KEY, OCID, WRONG_KEY] {
        assert!(
            !out.stdout.contains(secret) && !out.stderr.contains(secret),
            "{command:?} printed a Secret's value:\n{}\n{}",
            out.stdout,
            out.stderr
        );
    }
    out
}

/// A key the sandbox refuses, in a Secret of its own.
const WRONG_KEY: &str = "not-a-console-connect-key-4711";

/// `-n NS --secret consoleconnect --api-url URL`: the flags every Console Connect command of
/// these tests shares (the Secrets are the ones `Env` creates).
fn api_flags(env: &Env) -> Vec<String> {
    [
        "-n",
        &env.ns,
        "--secret",
        "consoleconnect",
        "--api-url",
        &env.sandbox.url,
    ]
    .map(str::to_owned)
    .to_vec()
}

fn args<'a>(command: &[&'a str], shared: &'a [String]) -> Vec<&'a str> {
    command
        .iter()
        .copied()
        .chain(shared.iter().map(String::as_str))
        .collect()
}

/// The cells of a table's lines: columns are three spaces apart, a cell has single spaces.
fn cells(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(|line| {
            let cells = line.split("   ").map(str::trim).filter(|c| !c.is_empty());
            cells.map(str::to_owned).collect()
        })
        .collect()
}

/// The row whose first cells are `key`.
fn row(table: &[Vec<String>], key: &[&str]) -> Vec<String> {
    table
        .iter()
        .find(|row| row.iter().zip(key).all(|(cell, want)| cell == want) && row.len() > key.len())
        .unwrap_or_else(|| panic!("no row {key:?} in {table:?}"))
        .clone()
}

#[tokio::test]
async fn ports_show_the_capacity_left_on_each_port() {
    let env = Env::without_operator(&sandbox::INSTANT).await;
    let used = 250;
    env.sandbox
        .seed_with(json!({
            "company": DEFAULT_COMPANY, "count": 1, "status": "ACTIVE", "namePrefix": "used-",
            "portId": sandbox::PORT_1G.id, "speedMbps": used,
        }))
        .await;
    let shared = api_flags(&env);
    let table = cells(&plugin_ok(&args(
        &["ports", "--company", DEFAULT_COMPANY],
        &shared,
    )));

    assert_eq!(
        table[0],
        [
            "NAME",
            "ID",
            "METRO",
            "SPEED(Mbps)",
            "REMAINING(Mbps)",
            "STATUS"
        ]
    );
    // One row per port Console Connect lists, as it lists them.
    let listed: Vec<Port> = env
        .sandbox
        .client()
        .list_ports(&sandbox::default_key(), DEFAULT_COMPANY)
        .await
        .expect("the sandbox lists the ports");
    let ids: Vec<&str> = table[1..].iter().map(|r| r[1].as_str()).collect();
    let want: Vec<&str> = listed.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, want);
    assert!(!ids.contains(&sandbox::PORT_DELETED.id));

    let one_gig = row(&table, &[sandbox::PORT_1G.name, sandbox::PORT_1G.id]);
    let left = sandbox::PORT_1G.speed_mbps - used;
    assert_eq!(
        one_gig[2..],
        [
            METRO_SIN.code.to_owned(),
            sandbox::PORT_1G.speed_mbps.to_string(),
            left.to_string(),
            "ACTIVE".to_owned()
        ]
    );
    let ten_gig = row(&table, &[sandbox::PORT_10G.name]);
    assert_eq!(ten_gig[4], sandbox::PORT_10G.speed_mbps.to_string());
    assert_eq!(row(&table, &[sandbox::PORT_INACTIVE.name])[5], "DISABLED");
}

#[tokio::test]
async fn a_refused_or_missing_key_says_where_to_look_and_never_shows_the_key() {
    let env = Env::without_operator(&sandbox::INSTANT).await;
    env.put_secret("wrong", "apiKey", WRONG_KEY).await;
    let url = env.sandbox.url.as_str();
    let ports = |secret: &str, key: &str| {
        plugin(&[
            "ports",
            "-n",
            &env.ns,
            "--secret",
            secret,
            "--key",
            key,
            "--company",
            DEFAULT_COMPANY,
            "--api-url",
            url,
        ])
    };

    let refused = ports("wrong", "apiKey");
    assert!(!refused.ok);
    assert!(
        refused.stderr.contains("refused the API key")
            && refused
                .stderr
                .contains(&format!("check the key in Secret {}/wrong", env.ns)),
        "{}",
        refused.stderr
    );
    let no_key = ports("consoleconnect", "token");
    assert!(!no_key.ok);
    assert!(
        no_key.stderr.contains(&format!(
            "Secret {}/consoleconnect has no key token; name the key that holds it with --key",
            env.ns
        )),
        "{}",
        no_key.stderr
    );
    let no_secret = ports("absent", "apiKey");
    assert!(
        !no_secret.ok && no_secret.stderr.contains("absent not found"),
        "{}",
        no_secret.stderr
    );
}

/// krew, built from the Go module proxy (hack/krew.sh), installs the archive and manifest that
/// hack/krew-package.sh writes, and `kubectl` finds the plugin in krew's bin directory.
#[tokio::test]
async fn krew_installs_the_plugin_and_kubectl_runs_it_to_show_reachable_metros() {
    let env = Env::without_operator(&sandbox::INSTANT).await;
    let krew_root = tempfile::tempdir().expect("temp dir");
    let krew_bin = install_with_krew(krew_root.path());

    let shared = api_flags(&env);
    let mut kubectl = cluster::kubectl();
    kubectl.env("PATH", with_path(&krew_bin)).args(args(
        &[
            "fastconnect",
            "metros",
            "--company",
            DEFAULT_COMPANY,
            "--port",
            sandbox::PORT_1G.name,
        ],
        &shared,
    ));
    let out = run(&mut kubectl, None);
    assert!(out.ok, "kubectl fastconnect metros failed:\n{}", out.stderr);

    let table = cells(&out.stdout);
    assert_eq!(
        table[0],
        ["CODE", "NAME", "ID", "READY", "LAYER2", "REACHABLE"]
    );
    let metros = env
        .sandbox
        .client()
        .oracle_metros(&sandbox::default_key())
        .await
        .expect("the sandbox lists Oracle's metros");
    assert_eq!(table.len(), 1 + metros.len());
    let yes_no = |flag: bool| if flag { "yes" } else { "no" };
    for metro in &metros {
        let cells = row(&table, &[metro.code.as_str()]);
        assert_eq!(
            cells[1..5],
            [
                metro.name.clone(),
                metro.id.clone(),
                yes_no(metro.ready).to_owned(),
                yes_no(metro.capabilities.layer2).to_owned()
            ]
        );
    }
    // What the fixture's metros are for (crates/test-support/src/sandbox.rs).
    for (metro, reachable) in [
        (METRO_HKG, "yes"),
        (METRO_LON, "yes"),
        (METRO_SIN, "no: MetroIsPortMetro"),
        (METRO_TYO, "no: MetroNotReady"),
        (METRO_SYD, "no: MetroWithoutLayer2"),
    ] {
        assert_eq!(row(&table, &[metro.code])[5], reachable, "{}", metro.code);
    }

    // Without a port, only the flags.
    let plain = cells(&plugin_ok(&args(&["metros"], &shared)));
    assert_eq!(plain[0], ["CODE", "NAME", "ID", "READY", "LAYER2"]);
}

/// krew's bin directory with the plugin installed in `root`.
fn install_with_krew(root: &Path) -> PathBuf {
    let krew = &script(&["hack/krew.sh"])[0];
    let out_dir = root.join("package").display().to_string();
    let packed = script(&["hack/krew-package.sh", &out_dir, PLUGIN]);
    let [manifest, archive] = &packed[..] else {
        panic!("hack/krew-package.sh printed {packed:?}, not the manifest and the archive");
    };
    let text = std::fs::read_to_string(manifest).expect("the manifest");
    assert!(
        text.contains(&format!("version: v{}", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    let mut install = Command::new(krew);
    install
        .env("KREW_ROOT", root)
        .arg("install")
        .arg(format!("--manifest={manifest}"))
        .arg(format!("--archive={archive}"));
    let out = run(&mut install, None);
    assert!(
        out.ok,
        "krew install failed:\n{}\n{}",
        out.stdout, out.stderr
    );
    root.join("bin")
}

/// The lines a repository script prints.
fn script(command: &[&str]) -> Vec<String> {
    let out = Command::new(support::repo_root().join(command[0]))
        .args(&command[1..])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout.lines().map(str::to_owned).collect()
}

fn with_path(dir: &Path) -> std::ffi::OsString {
    let rest = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::iter::once(dir.to_path_buf()).chain(std::env::split_paths(&rest));
    std::env::join_paths(dirs).expect("a PATH")
}

#[tokio::test]
async fn new_prints_what_the_api_server_accepts_and_stops_where_the_operator_would() {
    let env = Env::start(&sandbox::INSTANT).await;
    let shared = api_flags(&env);
    // 100 Mbps from the 1 Gbps port to Oracle in Hong Kong, but for the flags `changed`.
    let new = |name: &str, changed: &[(&str, &str)]| {
        let mut flags = vec![
            ("--port", sandbox::PORT_1G.name),
            ("--metro", "hong kong"),
            ("--speed", "100"),
        ];
        for (flag, value) in changed {
            flags.retain(|(f, _)| f != flag);
            flags.push((flag, value));
        }
        let mut command = vec!["new", name, "--company", DEFAULT_COMPANY];
        command.extend(["--ocid-secret", "oracle-vc"]);
        command.extend(flags.into_iter().flat_map(|(flag, value)| [flag, value]));
        plugin(&args(&command, &shared))
    };

    let good = new("hk", &[]);
    assert!(good.ok, "{}", good.stderr);
    let dry_run = helm::run(
        "kubectl",
        &["apply", "--dry-run=server", "-f", "-"],
        Some(&good.stdout),
    );
    assert!(dry_run.ok, "{}\n{}", dry_run.stderr, good.stdout);
    let printed: FastConnectConnection =
        serde_saphyr::from_str(&good.stdout).expect("the output is a FastConnectConnection");
    assert_eq!(printed.metadata.namespace.as_deref(), Some(env.ns.as_str()));
    assert_eq!(
        printed.spec.credentials.api_key_secret_ref.name,
        "consoleconnect"
    );
    assert!(
        good.stdout
            .contains(&format!("connection \"{}.hk\"", env.ns)),
        "{}",
        good.stdout
    );
    // Applied for real, the operator orders it as resolved.
    let applied = run(
        cluster::kubectl().args(["apply", "-f", "-"]),
        Some(&good.stdout),
    );
    assert!(applied.ok, "{}", applied.stderr);
    let active = env.wait_phase("hk", Phase::Active).await;
    let status = active.status.expect("status");
    assert_eq!(status.dest_metro.as_deref(), Some(METRO_HKG.code));
    assert_eq!(status.port_id.as_deref(), Some(sandbox::PORT_1G.id));

    // Each mistake: the plugin's error is the operator's message for the same spec.
    let too_fast = (sandbox::PORT_1G.speed_mbps + 1).to_string();
    let mistakes = [
        (
            "no-port",
            "--port",
            "Nope",
            "/sourcePort/name",
            "PortNotFound",
        ),
        (
            "no-metro",
            "--metro",
            "tokyo",
            "/destination/metro",
            "MetroNotReady",
        ),
        (
            "too-fast",
            "--speed",
            &too_fast,
            "/speedMbps",
            "SpeedExceedsPort",
        ),
    ];
    for (name, flag, text, field, reason) in mistakes {
        let refused = new(name, &[(flag, text)]);
        assert!(!refused.ok, "{name}: {}", refused.stdout);
        assert!(refused.stdout.is_empty(), "{name}: nothing to apply");
        // The same spec: the flags' defaults, then the value in question (a number where the
        // flag's text is one).
        let value = serde_json::from_str(text).unwrap_or_else(|_| json!(text));
        env.create(name, |o| {
            set(&mut o["spec"], "/speedMbps", json!(100));
            set(&mut o["spec"], "/destination/metro", json!("hong kong"));
            set(&mut o["spec"], field, value);
        })
        .await;
        let (_, ready) = env.wait_reason(name, reason).await;
        assert!(
            refused
                .stderr
                .contains(&format!("error: {}\n", ready.message)),
            "{name}: the operator says {:?}; the plugin said:\n{}",
            ready.message,
            refused.stderr
        );
        assert!(
            refused.stderr.contains(&format!("reason {reason})")),
            "{}",
            refused.stderr
        );
    }
}

#[tokio::test]
async fn status_shows_the_phase_its_age_and_the_support_handoff() {
    let env = Env::start(&["--creating-delay", "0", "--manual-approval"]).await;
    let waiting = "waiting";
    env.create(waiting, |_| {}).await;
    let waiting_fcc = env.wait_phase(waiting, Phase::AwaitingApproval).await;

    // A resource the operator does not watch, with a status as an older operator wrote it: no
    // phaseSince, so SINCE falls back to the newest condition change.
    let other_ns = cluster::test_namespace(&env.client, "plugin-old").await;
    let old = write_old_status(&env, &other_ns, "old").await;

    let everywhere = cells(&plugin_ok(&["status", "-A"]));
    assert_eq!(
        everywhere[0],
        ["NAMESPACE", "NAME", "PHASE", "SINCE", "NEXT"]
    );
    let row_waiting = row(&everywhere, &[&env.ns, waiting]);
    assert_eq!(row_waiting[2], "AwaitingApproval");
    let since = &row_waiting[3];
    assert!(
        since != "-" && !since.starts_with('~'),
        "the operator sets phaseSince: {since}"
    );
    let handoff = support_handoff(&waiting_fcc, waiting_fcc.status.as_ref().expect("status"));
    assert!(handoff.contains("oracle-vc"), "{handoff}");
    assert_eq!(row_waiting[4], handoff);

    let row_old = row(&everywhere, &[&other_ns, "old"]);
    assert_eq!(row_old[2], "Failed");
    assert!(row_old[3].starts_with('~'), "{row_old:?}");
    assert_eq!(row_old[4], old);

    // One namespace: no NAMESPACE column, and nothing of the others.
    let here = cells(&plugin_ok(&["status", "-n", &env.ns]));
    assert_eq!(here[0], ["NAME", "PHASE", "SINCE", "NEXT"]);
    assert_eq!(here.len(), 2, "{here:?}");
    assert_eq!(here[1][0], waiting);
}

/// Creates `name` in `namespace` with a Failed status carrying conditions but no phaseSince, and
/// returns its message.
async fn write_old_status(env: &Env, namespace: &str, name: &str) -> String {
    let fccs = kube::Api::<FastConnectConnection>::namespaced(env.client.clone(), namespace);
    let fcc: FastConnectConnection =
        serde_json::from_value(fixtures::connection(name)).expect("valid object");
    fccs.create(&PostParams::default(), &fcc)
        .await
        .expect("resource created");
    let message = "Oracle metro TYO (Tokyo) is not ready for new connections; pick another metro";
    let at = jiff::Timestamp::now() - jiff::SignedDuration::from_mins(90);
    let status = json!({"status": {
        "phase": "Failed",
        "message": message,
        "conditions": [{"type": "Ready", "status": "False", "reason": "MetroNotReady",
                        "message": message, "lastTransitionTime": at.to_string()}],
    }});
    fccs.patch_status(name, &PatchParams::default(), &Patch::Merge(status))
        .await
        .expect("status written");
    message.to_owned()
}
