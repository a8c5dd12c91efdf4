//! docs/security.md names a test for every threat; this keeps the names true.

use fastconnect_test_support as support;

use std::path::PathBuf;

/// The file that holds a test named in the doc: `file::function` for `tests/file.rs`,
/// `crates/.../x.rs::function`, or a unit test's module path (`controller::claims::tests::f`
/// in `src/controller/claims.rs`, `consoleconnect::error::tests::f` in that crate).
fn test_file(path: &str) -> PathBuf {
    let root = support::repo_root();
    if path.ends_with(".rs") {
        return root.join(path);
    }
    let modules: Vec<&str> = path.split("::").filter(|m| *m != "tests").collect();
    match modules.as_slice() {
        [file] => root.join(format!("tests/{file}.rs")),
        ["consoleconnect", rest @ ..] => {
            root.join(format!("crates/consoleconnect/src/{}.rs", rest.join("/")))
        }
        rest => root.join(format!("src/{}.rs", rest.join("/"))),
    }
}

/// `(file, function)` for each backticked `a::b` in the text that names a test.
fn named_tests(text: &str) -> Vec<(String, String)> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter_map(|quoted| {
            let (path, function) = quoted.rsplit_once("::")?;
            let looks_like_test = function
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                && path
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_:/.-".contains(c));
            looks_like_test.then(|| (path.to_owned(), function.to_owned()))
        })
        .collect()
}

#[test]
fn every_test_the_threat_model_names_exists() {
    let doc = std::fs::read_to_string(support::repo_root().join("docs/security.md"))
        .expect("docs/security.md");
    let named = named_tests(&doc);
    assert!(named.len() > 30, "too few tests found: {named:?}");
    let mut missing = Vec::new();
    for (path, function) in &named {
        let file = test_file(path);
        let source = std::fs::read_to_string(&file).unwrap_or_default();
        if !source.contains(&format!("fn {function}(")) {
            missing.push(format!("{path}::{function} (looked in {})", file.display()));
        }
    }
    assert!(
        missing.is_empty(),
        "named in docs/security.md but not found:\n{}",
        missing.join("\n")
    );
}

#[test]
fn every_threat_names_a_test() {
    let doc = std::fs::read_to_string(support::repo_root().join("docs/security.md"))
        .expect("docs/security.md");
    let threats = doc
        .split("\n## ")
        .find(|section| section.starts_with("Threats"))
        .expect("a Threats section");
    let rows: Vec<&str> = threats
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| threat") && !l.starts_with("|--"))
        .collect();
    assert!(rows.len() > 20, "too few threats: {}", rows.len());
    for row in rows {
        let shown_by = row.rsplit('|').nth(1).unwrap_or_default();
        assert!(
            // A test, a CI check script, or the benchmark (on demand).
            !named_tests(shown_by).is_empty()
                || shown_by.contains("`hack/")
                || shown_by.contains("benchmark"),
            "a threat without a test: {row}"
        );
    }
}
