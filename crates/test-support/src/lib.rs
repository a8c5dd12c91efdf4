//! What the integration tests share: the real control plane, the sandbox and the operator as
//! processes of their own, and the waits on them. A crate of its own so that nothing of it
//! reaches the operator's build.

pub mod bench;
pub mod cluster;
pub mod env;
pub mod fixtures;
pub mod helm;
pub mod operator;
pub mod sandbox;
pub mod tools;

/// The repository's root directory.
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A binary of this workspace, as built next to the running test (`target/<profile>/`):
/// `cargo test` at the workspace root builds every crate's binaries before it runs a test.
pub fn workspace_binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/<test>-<hash>
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test binary sits in target/<profile>/deps");
    let binary = profile_dir.join(name);
    assert!(
        binary.is_file(),
        "{} is not built: run the tests with `cargo test` at the workspace root, or build it \
         with `cargo build -p {name}`",
        binary.display(),
    );
    binary
}
