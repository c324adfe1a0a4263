//! The README tells the truth: its drop-reason table is the one the code declares.

#[test]
fn readme_drop_table_matches_code() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let table = vgate::metrics::DropReason::markdown_table();
    assert!(
        readme.contains(&table),
        "README.md drop-reason table is stale; replace it with:\n{table}"
    );
}

#[test]
fn readme_names_the_ci_test_command() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let ci = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/run")).unwrap();
    assert!(ci.contains("tests/run-all.sh"));
    assert!(readme.contains("\ntests/run-all.sh\n"));
}
