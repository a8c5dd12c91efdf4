//! `consoleconnect-sandbox`: a local stand-in for the Console Connect API, for tests and demos.
//!
//! It serves the endpoints the operator uses with the reference's JSON shapes (or the published
//! spec example's), validates Layer 2 creates by the reference's rules, moves connections
//! through CREATING → PENDING → ACTIVE on a timer, cancels or deletes them asynchronously,
//! changes their speed and name the way the spec allows (reductions at once, increases through
//! change requests Oracle approves), and offers `/_sandbox` admin endpoints to approve, deny,
//! fail, edit or delete connections, decide change requests, seed many, inject faults, switch
//! behaviours and read request statistics.

mod admin;
mod answers;
mod api;
mod change;
mod config;
mod error;
mod state;
mod traffic;
mod validate;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use clap::Parser;
use tokio::net::TcpListener;

use crate::config::{
    Behaviour, Config, ConnectionShape, DEFAULT_CONFIG_YAML, DeletedReads, ErrorShape,
    parse_duration, parse_rate,
};
use crate::state::{AppState, Settings};

const ABOUT: &str =
    "Local stand-in for the Console Connect API (ports, Oracle metros, Layer 2 connections)";

const AFTER_HELP: &str = "\
Options given here (or through their environment variables) override the `lifecycle`,
`faults` and `search` sections of the fixture. Durations: `0`, `500ms`, `2s`, `1m`; a bare
number is seconds. Logs go to stderr, filtered by SANDBOX_LOG or RUST_LOG (default `info`).
In a container, listen on 0.0.0.0:8088.

Public API (Authorization: Bearer <key>):
  GET    /api/company/{company}/ports?deleted=false
  GET    /api/company/oracle/metro/capabilities
  PUT    /api/v2/company/{company}/connections/layer2
  GET    /api/v2/company/{company}/connections/{id}
  GET    /api/v2/company/{company}/connections?page=1&count=20&status=ACTIVE
  DELETE /api/v2/company/{company}/connections/{id}
  POST   /api/v2/company/{company}/connections/{id}   (update: lower speed, rename)
  PUT    /api/company/{company}/connections/{id}/change   (change request: {\"speed\": N})
  DELETE /api/company/{company}/connections/{id}/change   (withdraw the pending change)
  GET    /api/company/{company}/connections[/{id}]   (older paths: unpaged list, read by id)
Admin API (no auth): /_sandbox/stats, /_sandbox/reset-stats, /_sandbox/reset,
  /_sandbox/connections[/{id}[/activate|/deny|/error|/status|/delete|/edit]],
  /_sandbox/connections/{id}/change/approve|reject, /_sandbox/seed,
  /_sandbox/faults, /_sandbox/faults/answers, /_sandbox/lifecycle, /_sandbox/behaviour. See docs/sandbox.md.";

#[derive(Debug, Parser)]
#[command(name = "consoleconnect-sandbox", version, about = ABOUT, after_help = AFTER_HELP)]
struct Args {
    /// Address to listen on; port 0 picks a free port. On start the sandbox prints one line,
    /// `listening on http://ADDRESS`, to stdout.
    #[arg(
        long,
        env = "SANDBOX_LISTEN",
        default_value = "127.0.0.1:8088",
        value_name = "ADDRESS"
    )]
    listen: String,

    /// YAML fixture with companies, API keys, ports, Oracle metros, lifecycle and faults.
    /// Without it the built-in demo fixture is used (see --print-default-config).
    #[arg(long, env = "SANDBOX_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    /// Print the built-in fixture as YAML and exit.
    #[arg(long)]
    print_default_config: bool,

    /// How long a new connection stays CREATING before it turns PENDING [fixture default: 2s].
    #[arg(long, env = "SANDBOX_CREATING_DELAY", value_parser = parse_duration, value_name = "DURATION")]
    creating_delay: Option<Duration>,

    /// How long a connection stays PENDING before it turns ACTIVE, unless --manual-approval
    /// [fixture default: 5s].
    #[arg(long, env = "SANDBOX_APPROVAL_DELAY", value_parser = parse_duration, value_name = "DURATION")]
    approval_delay: Option<Duration>,

    /// Hold new connections in PENDING until `POST /_sandbox/connections/{id}/activate`;
    /// `--manual-approval=false` turns it off when the fixture turns it on [fixture default: false].
    #[arg(
        long,
        env = "SANDBOX_MANUAL_APPROVAL",
        num_args = 0..=1,
        default_missing_value = "true",
        value_name = "BOOL"
    )]
    manual_approval: Option<bool>,

    /// How long a deleted connection stays DELETING before it is DELETED and disappears from
    /// the API [fixture default: 1s].
    #[arg(long, env = "SANDBOX_DELETING_DELAY", value_parser = parse_duration, value_name = "DURATION")]
    deleting_delay: Option<Duration>,

    /// Delay added before answering every /api request, to provoke client timeouts
    /// [fixture default: 0].
    #[arg(long, env = "SANDBOX_LATENCY", value_parser = parse_duration, value_name = "DURATION")]
    latency: Option<Duration>,

    /// Fraction (0 to 1) of /api requests answered with 500 before doing anything
    /// [fixture default: 0].
    #[arg(long, env = "SANDBOX_ERROR_RATE", value_parser = parse_rate, value_name = "FRACTION")]
    error_rate: Option<f64>,

    /// Fraction (0 to 1) of /api requests answered with 429 Too Many Requests
    /// [fixture default: 0].
    #[arg(long, env = "SANDBOX_THROTTLE_RATE", value_parser = parse_rate, value_name = "FRACTION")]
    throttle_rate: Option<f64>,

    /// Seconds sent in the Retry-After header of 429 responses [fixture default: 1].
    #[arg(long, env = "SANDBOX_RETRY_AFTER", value_name = "SECONDS")]
    retry_after: Option<u64>,

    /// Fraction (0 to 1) of valid creates that are carried out but answered with 502, as when
    /// a gateway loses the response; for testing that a client never orders twice
    /// [fixture default: 0].
    #[arg(long, env = "SANDBOX_LOST_CREATE_RATE", value_parser = parse_rate, value_name = "FRACTION")]
    lost_create_rate: Option<f64>,

    /// Largest page the connection search serves; a larger `count` is served as this many
    /// [fixture `search.maxCount`, default: 50].
    #[arg(long, env = "SANDBOX_SEARCH_MAX_COUNT", value_parser = clap::value_parser!(u32).range(1..), value_name = "N")]
    search_max_count: Option<u32>,

    /// New connections are missing from the search and the list until this long after their
    /// creation; reads by id see them at once.
    #[arg(long, env = "SANDBOX_LIST_LAG", value_parser = parse_duration, value_name = "DURATION", default_value = "0")]
    list_lag: Duration,

    /// A valid create is stored at once (its lifecycle starts) but answered this much later.
    #[arg(long, env = "SANDBOX_CREATE_DELAY", value_parser = parse_duration, value_name = "DURATION", default_value = "0")]
    create_delay: Duration,

    /// A valid change request is stored at once (its approval clock starts) but answered this
    /// much later.
    #[arg(long, env = "SANDBOX_CHANGE_DELAY", value_parser = parse_duration, value_name = "DURATION", default_value = "0")]
    change_delay: Duration,

    /// Refuse (400) a create whose name a connection of the company that is neither DELETED
    /// nor CANCELLED already has.
    #[arg(
        long,
        env = "SANDBOX_REFUSE_DUPLICATE_NAMES",
        num_args = 0..=1,
        default_missing_value = "true",
        default_value = "false",
        value_name = "BOOL"
    )]
    refuse_duplicate_names: bool,

    /// How a read by id answers for a DELETED connection: 404, or show it with
    /// `"deleted": true`.
    #[arg(
        long,
        env = "SANDBOX_DELETED_READS",
        value_enum,
        default_value = "404",
        value_name = "HOW"
    )]
    deleted_reads: DeletedReads,

    /// Body of /api errors: nested `{"error": {...}}`, flat `{"statusCode", "name", "message"}`
    /// or message `{"message", "status", "statusCode"}`.
    #[arg(
        long,
        env = "SANDBOX_ERROR_SHAPE",
        value_enum,
        default_value = "nested",
        value_name = "SHAPE"
    )]
    error_shape: ErrorShape,

    /// How connections and metros are written: the reference's shape or the spec example's.
    #[arg(
        long,
        env = "SANDBOX_CONNECTION_SHAPE",
        value_enum,
        default_value = "reference",
        value_name = "SHAPE"
    )]
    connection_shape: ConnectionShape,
}

impl Args {
    /// The fixture's settings with the command line's overrides.
    fn settings(&self, config: &Config) -> Settings {
        let mut lifecycle = config.lifecycle;
        let mut faults = config.faults;
        override_with(&mut lifecycle.creating_delay, self.creating_delay);
        override_with(&mut lifecycle.approval_delay, self.approval_delay);
        override_with(&mut lifecycle.manual_approval, self.manual_approval);
        override_with(&mut lifecycle.deleting_delay, self.deleting_delay);
        override_with(&mut faults.latency, self.latency);
        override_with(&mut faults.error_rate, self.error_rate);
        override_with(&mut faults.throttle_rate, self.throttle_rate);
        override_with(&mut faults.lost_create_rate, self.lost_create_rate);
        if let Some(seconds) = self.retry_after {
            faults.retry_after_seconds = Some(seconds);
        }
        let mut behaviour = Behaviour::new(config.search);
        override_with(&mut behaviour.search_max_count, self.search_max_count);
        behaviour.list_lag = self.list_lag;
        behaviour.create_delay = self.create_delay;
        behaviour.change_delay = self.change_delay;
        behaviour.refuse_duplicate_names = self.refuse_duplicate_names;
        behaviour.deleted_reads = self.deleted_reads;
        behaviour.error_shape = self.error_shape;
        behaviour.connection_shape = self.connection_shape;
        Settings {
            lifecycle,
            faults,
            behaviour,
        }
    }
}

fn override_with<T>(target: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *target = value;
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.print_default_config {
        print!("{DEFAULT_CONFIG_YAML}");
        return ExitCode::SUCCESS;
    }
    init_tracing();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("consoleconnect-sandbox: {err}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("SANDBOX_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Logs go to stderr: stdout carries only the `listening on` line.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

#[tokio::main]
async fn run(args: Args) -> Result<(), String> {
    let config = load_config(args.config.as_deref())?;
    let settings = args.settings(&config);
    let app = Arc::new(AppState::new(config, settings));
    let listener = TcpListener::bind(&args.listen)
        .await
        .map_err(|err| format!("cannot listen on {}: {err}", args.listen))?;
    let address = listener
        .local_addr()
        .map_err(|err| format!("cannot read the listening address: {err}"))?;
    announce(&format!("listening on http://{address}"))?;
    tracing::info!(%address, ?settings, "sandbox started");
    axum::serve(listener, router(app))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|err| format!("server failed: {err}"))
}

fn load_config(path: Option<&std::path::Path>) -> Result<Config, String> {
    let Some(path) = path else {
        return Config::default_fixture();
    };
    let text = std::fs::read_to_string(path)
        .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
    Config::parse(&text).map_err(|err| format!("{}: {err}", path.display()))
}

fn router(app: Arc<AppState>) -> Router {
    Router::new()
        .merge(api::router(app.clone()))
        .merge(admin::router())
        .fallback(api::fallback)
        .with_state(app)
}

/// Tests wait for this line, so it is flushed at once.
fn announce(line: &str) -> Result<(), String> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .map_err(|err| format!("cannot write to stdout: {err}"))
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn flags_override_the_fixture() {
        let config = Config::default_fixture().unwrap();
        let args = Args::parse_from([
            "sandbox",
            "--creating-delay",
            "0",
            "--manual-approval",
            "--error-rate",
            "0.5",
            "--retry-after",
            "9",
        ]);
        let settings = args.settings(&config);
        assert_eq!(settings.lifecycle.creating_delay, Duration::ZERO);
        assert!(settings.lifecycle.manual_approval);
        assert_eq!(
            settings.lifecycle.approval_delay,
            config.lifecycle.approval_delay
        );
        assert_eq!(settings.faults.error_rate, 0.5);
        assert_eq!(settings.faults.retry_after_seconds, Some(9));
        let args = Args::parse_from(["sandbox", "--manual-approval=false"]);
        assert_eq!(args.manual_approval, Some(false));
    }

    #[test]
    fn behaviour_flags() {
        let config = Config::default_fixture().unwrap();
        let defaults = Args::parse_from(["sandbox"]).settings(&config).behaviour;
        assert_eq!(defaults, Behaviour::new(config.search));
        assert_eq!(defaults.search_max_count, 50);
        let args = Args::parse_from([
            "sandbox",
            "--search-max-count",
            "7",
            "--list-lag",
            "2s",
            "--create-delay",
            "500ms",
            "--change-delay",
            "2s",
            "--refuse-duplicate-names",
            "--deleted-reads",
            "show",
            "--error-shape",
            "message",
            "--connection-shape",
            "spec",
        ]);
        let behaviour = args.settings(&config).behaviour;
        assert_eq!(behaviour.search_max_count, 7);
        assert_eq!(behaviour.list_lag, Duration::from_secs(2));
        assert_eq!(behaviour.create_delay, Duration::from_millis(500));
        assert_eq!(behaviour.change_delay, Duration::from_secs(2));
        assert!(behaviour.refuse_duplicate_names);
        assert_eq!(behaviour.deleted_reads, DeletedReads::Show);
        assert_eq!(behaviour.error_shape, ErrorShape::Message);
        assert_eq!(behaviour.connection_shape, ConnectionShape::Spec);
        assert!(Args::try_parse_from(["sandbox", "--search-max-count", "0"]).is_err());
        assert!(Args::try_parse_from(["sandbox", "--deleted-reads", "410"]).is_err());
    }
}
