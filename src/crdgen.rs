//! Writes the CustomResourceDefinition generated from `src/crd.rs` to `crds/`.
//!
//! `cargo run --bin crdgen` rewrites the file; `cargo run --bin crdgen -- --stdout` prints it.

use std::{fs, path::Path, process::ExitCode};

use fastconnect_operator::crd::{CRD_PATH, crd_yaml};

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
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(CRD_PATH);
    match fs::write(&path, yaml) {
        Ok(()) => {
            println!("wrote {}", path.display());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("crdgen: cannot write {}: {error}", path.display());
            ExitCode::FAILURE
        }
    }
}
