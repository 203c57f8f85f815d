//! Damaged files give errors, never panics: every test file cut after each line, and with each
//! line's value replaced by values of the wrong type.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

fn files() -> Vec<(String, String)> {
    let dirs = [
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data"),
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/examples"),
    ];
    let mut out = Vec::new();
    for dir in dirs {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml") {
                let text = std::fs::read_to_string(&path).unwrap();
                out.push((path.display().to_string(), text));
            }
        }
    }
    out
}

#[test]
fn truncated_files_never_panic() {
    let mut errors = 0;
    for (name, text) in files() {
        let lines: Vec<&str> = text.lines().collect();
        for cut in 0..lines.len() {
            let prefix = lines[..cut].join("\n");
            if let Err(error) = pwx_config::parse_str(&prefix, &name) {
                errors += 1;
                assert!(!error.to_string().is_empty());
            }
        }
    }
    assert!(
        errors > 50,
        "cutting files should break most of them ({errors})"
    );
}

#[test]
fn wrongly_typed_values_never_panic() {
    let replacements = [
        "[]",
        "{}",
        "~",
        "-1",
        "99999999999",
        "\"\"",
        "[1, {a: b}]",
        "true",
    ];
    let mut errors = 0;
    for (name, text) in files() {
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let Some((key, _)) = line.split_once(": ") else {
                continue;
            };
            for replacement in replacements {
                let mut changed = lines.clone();
                let new_line = format!("{key}: {replacement}");
                changed[i] = &new_line;
                if pwx_config::parse_str(&changed.join("\n"), &name).is_err() {
                    errors += 1;
                }
            }
        }
    }
    assert!(errors > 100, "wrong types should be refused ({errors})");
}
