//! Writes the CustomResourceDefinition generated from `src/crd.rs` to `crds/` and to the Helm
//! chart's `crds/` folder (the same bytes; `tests/helm.rs` checks that they stay equal).
//!
//! `cargo run --bin crdgen` rewrites both files; `cargo run --bin crdgen -- --stdout` prints it.

use std::{fs, path::Path, process::ExitCode};

use fastconnect_operator::crd::{CRD_PATH, crd_yaml};

/// The chart folder whose `crds/` gets a copy of [`CRD_PATH`].
const HELM_CHART_DIR: &str = "deploy/helm/fastconnect-operator";

fn main() -> ExitCode {
    let yaml = match crd_yaml() {
        Ok(yaml) => yaml,
        Err(error) => {
            eprintln!("crdgen: cannot render the CRD: {error}");
            return ExitCode::FAILURE;
        }
    };
    if std::env::args().any(|arg| arg == "--stdout") {
        print!("{yaml}");
        return ExitCode::SUCCESS;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let file_name = Path::new(CRD_PATH)
        .file_name()
        .expect("CRD_PATH names a file");
    let targets = [
        root.join(CRD_PATH),
        root.join(HELM_CHART_DIR).join("crds").join(file_name),
    ];
    for path in &targets {
        if let Err(error) = fs::write(path, &yaml) {
            eprintln!("crdgen: cannot write {}: {error}", path.display());
            return ExitCode::FAILURE;
        }
        println!("wrote {}", path.display());
    }
    ExitCode::SUCCESS
}
