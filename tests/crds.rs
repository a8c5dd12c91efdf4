//! The committed CRD is what the Rust types generate.

use fastconnect_operator::crd::{CRD_PATH, crd_yaml};

#[test]
fn committed_crd_is_up_to_date() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(CRD_PATH);
    let committed = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let generated = crd_yaml().expect("the CRD renders");
    assert!(
        committed == generated,
        "{} is stale: run `cargo run --bin crdgen` and commit the result",
        CRD_PATH
    );
}
