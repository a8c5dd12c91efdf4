//! Tools the tests run that the project's scripts install into the cache (promtool, Checkov,
//! cargo-deny): the path `env_var` names (hack/test.sh installs them up front and sets it), or
//! whatever the script prints after installing the tool, so that a single test runs on its own.

use std::{path::PathBuf, process::Command};

/// `what` is the tool's name in messages; `script` and `args` install it and print its path.
pub fn installed(env_var: &str, script: &str, args: &[&str], what: &str) -> PathBuf {
    let path = match std::env::var_os(env_var) {
        Some(path) => PathBuf::from(path),
        None => {
            let script = super::repo_root().join(script);
            let out = Command::new(&script)
                .args(args)
                .output()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
            assert!(
                out.status.success(),
                "{} could not install {what} (set {env_var} to one):\n{}",
                script.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
        }
    };
    assert!(
        path.is_file(),
        "{what} {} does not exist ({env_var}, or the script's output)",
        path.display()
    );
    path
}
