//! The operator binary as a process of its own, watching one test namespace and talking to a
//! sandbox, with its logs kept for assertions and for failure reports.

use std::{
    fs::File,
    net::{SocketAddr, TcpListener},
    path::PathBuf,
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use super::cluster;

pub struct Operator {
    child: Child,
    pub metrics_addr: SocketAddr,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

/// Fast cadences so that tests finish in seconds.
const TEST_ENV: &[(&str, &str)] = &[
    ("FCO_POLL_PROGRESS", "300ms"),
    ("FCO_POLL_ACTIVE", "2s"),
    ("FCO_CATALOG_TTL", "2s"),
    ("FCO_SECRET_TTL", "1s"),
    ("FCO_BACKOFF_MIN", "200ms"),
    ("FCO_BACKOFF_MAX", "3s"),
    ("FCO_API_TIMEOUT", "3s"),
    // The sandbox lists a new order at once unless a test sets a lag (and its own window).
    ("FCO_ORDER_SETTLE", "2s"),
    // The local sandbox takes more than Console Connect's safe default; the limit itself is
    // tested in tests/client_contract.rs.
    ("FCO_API_RATE_LIMIT", "100"),
    ("FCO_API_RATE_BURST", "100"),
    ("RUST_LOG", "info,fastconnect_operator=debug"),
];

impl Operator {
    pub fn start(sandbox_url: &str, namespace: &str) -> Self {
        Self::start_with(sandbox_url, namespace, &[])
    }

    /// Starts the operator with extra environment (which wins over the test defaults).
    pub fn start_with(sandbox_url: &str, namespace: &str, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("operator.log");
        let out = File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let metrics_addr = free_port();
        // FCO_OPERATOR_BIN runs another build, e.g. the static release binary the image ships.
        let binary = std::env::var("FCO_OPERATOR_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|_| super::workspace_binary("fastconnect-operator"));
        let mut command = Command::new(binary);
        command
            .env("KUBECONFIG", cluster::kubeconfig_path())
            .env("FCO_API_BASE_URL", sandbox_url)
            .env("FCO_NAMESPACES", namespace)
            .env("FCO_LISTEN", metrics_addr.to_string())
            .envs(TEST_ENV.iter().copied())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let child = command.spawn().expect("the operator starts");
        Operator {
            child,
            metrics_addr,
            log,
            _dir: dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the process to exit by itself.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the operator did not exit within {timeout:?}; logs:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM, as Kubernetes stopping the Pod would; the operator shuts down by itself
    /// (see [`Operator::wait_exit`]).
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(
            status.success(),
            "kill -TERM {} failed: {status}",
            self.pid()
        );
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits until `/readyz` answers 200 (the watches have synced).
    pub async fn wait_ready(&self) {
        let url = format!("http://{}/readyz", self.metrics_addr);
        cluster::wait_for_ok("/readyz to answer 200", Duration::from_secs(30), || async {
            let response = reqwest::get(&url).await.map_err(|e| e.to_string())?;
            if response.status().is_success() {
                Ok(())
            } else {
                Err(response.status().to_string())
            }
        })
        .await
    }

    /// Waits until `/metrics` contains `line`, and returns the exposition.
    pub async fn wait_metric(&self, line: &str) -> String {
        let url = format!("http://{}/metrics", self.metrics_addr);
        cluster::wait_for_ok(
            &format!("metric {line}"),
            Duration::from_secs(30),
            || async {
                let text = reqwest::get(&url)
                    .await
                    .map_err(|e| e.to_string())?
                    .text()
                    .await
                    .map_err(|e| e.to_string())?;
                if text.contains(line) {
                    Ok(text)
                } else {
                    Err("not yet".to_owned())
                }
            },
        )
        .await
    }

    /// The Prometheus exposition from `/metrics`.
    pub async fn metrics(&self) -> String {
        let url = format!("http://{}/metrics", self.metrics_addr);
        cluster::wait_for_ok("the metrics endpoint", Duration::from_secs(20), || async {
            let response = reqwest::get(&url).await.map_err(|e| e.to_string())?;
            response.text().await.map_err(|e| e.to_string())
        })
        .await
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let logs = self.logs();
            let tail: Vec<&str> = logs.lines().rev().take(80).collect();
            eprintln!("--- operator log (last 80 lines) ---");
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

fn free_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr")
}
