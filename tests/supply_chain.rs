//! The supply-chain policy (deny.toml, checked by `hack/supply-chain.sh check` in hack/test.sh)
//! is shown to bite: each rule is broken on purpose, in a copy of deny.toml or in a small
//! throw-away Cargo project of path crates (no network), and cargo-deny must fail naming it.
//!
//! cargo-deny comes from `FCO_CARGO_DENY` (hack/test.sh sets it), else from
//! `hack/supply-chain.sh tool cargo-deny`, which installs the pinned version into the tool cache
//! when it is not there yet; either way a missing cargo-deny fails the tests.

use fastconnect_test_support as support;

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

/// For every licence deny.toml allows, a crate of today's graph for which it is the only choice
/// (or part of an AND): without the licence, the check must reject that crate. A licence added
/// to deny.toml needs an entry here, which keeps the list to what the graph needs.
const NEEDED_BY: [(&str, &str); 7] = [
    ("MIT", "tokio"),
    ("Apache-2.0", "kube"),
    ("Apache-2.0 WITH LLVM-exception", "ar_archive_writer"),
    ("BSD-3-Clause", "subtle"),
    ("ISC", "untrusted"),
    ("Unicode-3.0", "unicode-ident"),
    ("Zlib", "foldhash"),
];

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The cargo-deny binary: `FCO_CARGO_DENY`, or installed (once per test binary) by the script.
fn cargo_deny() -> &'static Path {
    static DENY: OnceLock<PathBuf> = OnceLock::new();
    DENY.get_or_init(|| {
        support::tools::installed(
            "FCO_CARGO_DENY",
            "hack/supply-chain.sh",
            &["tool", "cargo-deny"],
            "cargo-deny",
        )
    })
}

struct Run {
    ok: bool,
    output: String,
}

fn run(cmd: &mut Command) -> Run {
    let out = cmd.output().expect("run the command");
    Run {
        ok: out.status.success(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// `hack/supply-chain.sh check` (what CI runs) with `config` as deny.toml.
fn check_workspace(config: &Path) -> Run {
    run(Command::new(repo().join("hack/supply-chain.sh"))
        .args(["check", "--hide-inclusion-graph"])
        .env("FCO_CARGO_DENY", cargo_deny())
        .env("FCO_DENY_CONFIG", config))
}

/// cargo-deny with the project's deny.toml on the throw-away project in `dir`, as the script
/// runs it on the workspace.
fn check_project(dir: &Path, checks: &[&str]) -> Run {
    let lock = run(Command::new(env!("CARGO"))
        .args(["generate-lockfile", "--offline", "--manifest-path"])
        .arg(dir.join("Cargo.toml")));
    assert!(lock.ok, "cargo generate-lockfile:\n{}", lock.output);
    run(Command::new(cargo_deny())
        .args(["--locked", "--offline", "--workspace", "--color", "never"])
        .arg("--manifest-path")
        .arg(dir.join("Cargo.toml"))
        .arg("--config")
        .arg(repo().join("deny.toml"))
        .args(["check", "--hide-inclusion-graph"])
        .args(checks))
}

fn deny_toml() -> String {
    fs::read_to_string(repo().join("deny.toml")).expect("read deny.toml")
}

/// The `allow` list of deny.toml's [licenses] table, one quoted licence a line.
fn allowed_licences(deny: &str) -> Vec<String> {
    let licenses = deny
        .split("\n[licenses]\n")
        .nth(1)
        .expect("deny.toml has a [licenses] table");
    let list = licenses
        .split("\nallow = [\n")
        .nth(1)
        .expect("[licenses] has an allow list")
        .split("\n]")
        .next()
        .expect("the allow list ends");
    list.lines()
        .map(|l| l.trim().trim_end_matches(',').trim_matches('"').to_owned())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// A path crate `name` `version` (Apache-2.0) in `dir`, with `manifest_extra` appended.
fn path_crate(dir: &Path, name: &str, version: &str, publish: bool, manifest_extra: &str) {
    fs::create_dir_all(dir.join("src")).expect("create the crate's src/");
    fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"{name}\"\nversion = \"{version}\"\nedition = \"2024\"\n\
             license = \"Apache-2.0\"\n{}\n{manifest_extra}",
            if publish { "" } else { "publish = false" }
        ),
    )
    .expect("write Cargo.toml");
    fs::write(dir.join("src/lib.rs"), "").expect("write lib.rs");
}

/// An `app` crate depending on two versions (4.0.0 and 5.0.0, both path crates) of each of `dupes`.
fn project_with_two_versions_of(dir: &Path, dupes: &[&str]) {
    let mut deps = String::from("[dependencies]\n");
    for (i, name) in dupes.iter().enumerate() {
        for major in [4, 5] {
            let sub = format!("{name}-{major}");
            path_crate(&dir.join(&sub), name, &format!("{major}.0.0"), false, "");
            deps.push_str(&format!(
                "dep{i}v{major} = {{ package = \"{name}\", path = \"{sub}\", version = \"{major}.0.0\" }}\n"
            ));
        }
    }
    path_crate(dir, "app", "0.1.0", false, &deps);
}

/// Whether a diagnostic points at `krate`'s manifest: `/<krate>-<digit>` (so `kube` is not
/// `kube-client`).
fn names_crate(diag: &str, krate: &str) -> bool {
    let needle = format!("/{krate}-");
    diag.match_indices(&needle).any(|(at, _)| {
        diag[at + needle.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit())
    })
}

#[test]
fn the_workspace_passes_the_policy() {
    let run = check_workspace(&repo().join("deny.toml"));
    assert!(run.ok, "hack/supply-chain.sh check failed:\n{}", run.output);
    assert!(
        run.output.contains("bans ok, licenses ok, sources ok"),
        "{}",
        run.output
    );
    assert!(
        !run.output.contains("license was not encountered"),
        "an allowed licence is unused:\n{}",
        run.output
    );
}

#[test]
fn without_any_one_allowed_licence_the_check_fails_naming_it() {
    let deny = deny_toml();
    let allowed = allowed_licences(&deny);
    let mut listed: Vec<&str> = NEEDED_BY.iter().map(|(l, _)| *l).collect();
    listed.sort_unstable();
    let mut in_deny: Vec<&str> = allowed.iter().map(String::as_str).collect();
    in_deny.sort_unstable();
    assert_eq!(
        in_deny, listed,
        "deny.toml's allow list and NEEDED_BY differ"
    );

    let tmp = tempfile::tempdir().expect("temp dir");
    for (licence, krate) in NEEDED_BY {
        let line = format!("    \"{licence}\",\n");
        assert!(deny.contains(&line), "deny.toml has no line {line:?}");
        let config = tmp.path().join("deny.toml");
        fs::write(&config, deny.replacen(&line, "", 1)).expect("write the copy");
        let run = check_workspace(&config);
        assert!(
            !run.ok,
            "the check passed without {licence}:\n{}",
            run.output
        );
        assert!(
            run.output.contains("licenses FAILED"),
            "{licence}:\n{}",
            run.output
        );
        // The crate's diagnostic points at its Cargo.toml (.../<crate>-<version>/Cargo.toml)
        // and names the licence as the one rejected.
        let rejected = run
            .output
            .split("error[rejected]")
            .skip(1)
            .find(|diag| names_crate(diag, krate))
            .unwrap_or_else(|| {
                panic!("{krate} is not rejected without {licence}:\n{}", run.output)
            });
        let expression = rejected
            .lines()
            .find(|l| l.contains("license = \""))
            .unwrap_or_default();
        assert!(
            rejected.contains("rejected: license is not explicitly allowed")
                && expression.contains(licence),
            "{licence} is not named for {krate}:\n{rejected}"
        );
    }
}

#[test]
fn two_versions_of_kube_k8s_openapi_or_schemars_fail_the_check() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let denied = [
        "kube",
        "kube-client",
        "kube-core",
        "kube-runtime",
        "kube-derive",
        "k8s-openapi",
        "schemars",
    ];
    let mut dupes = denied.to_vec();
    dupes.push("anything-else");
    project_with_two_versions_of(tmp.path(), &dupes);
    let run = check_project(tmp.path(), &["bans"]);
    assert!(!run.ok, "two versions of kube & co passed:\n{}", run.output);
    for name in denied {
        assert!(
            run.output.contains(&format!(
                "error[duplicate]: found 2 duplicate entries for crate '{name}'"
            )),
            "no error for two versions of {name}:\n{}",
            run.output
        );
    }
    // Any other crate in two versions is only a warning.
    assert!(
        run.output
            .contains("warning[duplicate]: found 2 duplicate entries for crate 'anything-else'"),
        "{}",
        run.output
    );

    // ... so a graph with only that duplicate passes.
    let other = tempfile::tempdir().expect("temp dir");
    project_with_two_versions_of(other.path(), &["anything-else"]);
    let run = check_project(other.path(), &["bans"]);
    assert!(
        run.ok,
        "a duplicate outside the rule failed the check:\n{}",
        run.output
    );
    assert!(run.output.contains("warning[duplicate]"), "{}", run.output);
}

#[test]
fn a_wildcard_requirement_fails_the_check() {
    // A publishable crate with a path dependency without a version: `*` on crates.io.
    let tmp = tempfile::tempdir().expect("temp dir");
    path_crate(&tmp.path().join("lib"), "some-lib", "1.0.0", false, "");
    path_crate(
        tmp.path(),
        "app",
        "0.1.0",
        true,
        "[dependencies]\nsome-lib = { path = \"lib\" }\n",
    );
    let run = check_project(tmp.path(), &["bans"]);
    assert!(!run.ok, "a wildcard dependency passed:\n{}", run.output);
    assert!(run.output.contains("error[wildcard]"), "{}", run.output);

    // The workspace's own path dependencies are fine: its crates are not published.
    fs::write(
        tmp.path().join("Cargo.toml"),
        fs::read_to_string(tmp.path().join("Cargo.toml"))
            .expect("read")
            .replacen(
                "license = \"Apache-2.0\"\n",
                "license = \"Apache-2.0\"\npublish = false\n",
                1,
            ),
    )
    .expect("write");
    let run = check_project(tmp.path(), &["bans"]);
    assert!(run.ok, "a private path dependency failed:\n{}", run.output);
}

#[test]
fn a_registry_other_than_crates_io_fails_the_check() {
    // The policy allows exactly one registry; with none allowed, every crate of Cargo.lock is
    // reported with its source, which shows that the check reads each crate's source.
    let deny = deny_toml();
    let line = "allow-registry = [\"https://github.com/rust-lang/crates.io-index\"]\n";
    assert!(
        deny.contains(line),
        "deny.toml no longer allows exactly crates.io"
    );
    let tmp = tempfile::tempdir().expect("temp dir");
    let config = tmp.path().join("deny.toml");
    fs::write(&config, deny.replacen(line, "allow-registry = []\n", 1)).expect("write the copy");
    let run = check_workspace(&config);
    assert!(
        !run.ok,
        "crates.io sources passed with no registry allowed:\n{}",
        run.output
    );
    assert!(run.output.contains("sources FAILED"), "{}", run.output);
    assert!(
        run.output.contains("error[source-not-allowed]")
            && run
                .output
                .contains("registry+https://github.com/rust-lang/crates.io-index"),
        "{}",
        run.output
    );
}
