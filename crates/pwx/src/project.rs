//! A filter project on disk, as `pwx new` lays it out: which language it is written in, its
//! name, and where `pwx build` puts the module (`build/<name>.wasm`, what `pwx test`,
//! `envoy.yaml` and the README use).

use anyhow::{Context as _, bail};
use std::path::{Path, PathBuf};

/// The languages `pwx new` and `pwx build` know.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Language {
    /// Rust with the proxy-wasm crate.
    Rust,
    /// AssemblyScript with @solo-io/proxy-runtime.
    #[value(name = "assemblyscript", alias = "as")]
    AssemblyScript,
    /// C++ with proxy-wasm-cpp-sdk (clang, WASI).
    Cpp,
    /// Go ≥ 1.24 (GOOS=wasip1) with proxy-wasm-go-sdk.
    Go,
}

impl Language {
    pub(crate) const ALL: [Language; 4] = [
        Language::Rust,
        Language::AssemblyScript,
        Language::Cpp,
        Language::Go,
    ];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Language::Rust => "Rust",
            Language::AssemblyScript => "AssemblyScript",
            Language::Cpp => "C++",
            Language::Go => "Go",
        }
    }
}

/// A project directory and what it is.
#[derive(Debug)]
pub(crate) struct Project {
    pub dir: PathBuf,
    pub language: Language,
    pub name: String,
}

impl Project {
    /// Recognizes the project in `dir` by its manifest.
    pub(crate) fn open(dir: &Path) -> anyhow::Result<Project> {
        if !dir.is_dir() {
            bail!("{} is not a directory", dir.display());
        }
        let (language, name) = if dir.join("Cargo.toml").is_file() {
            (Language::Rust, cargo_name(&dir.join("Cargo.toml"))?)
        } else if dir.join("package.json").is_file() {
            (
                Language::AssemblyScript,
                npm_name(&dir.join("package.json"))?,
            )
        } else if dir.join("go.mod").is_file() {
            (Language::Go, go_name(&dir.join("go.mod"))?)
        } else if dir.join("Makefile").is_file() && has_extension(dir, "cc") {
            (Language::Cpp, make_name(&dir.join("Makefile"))?)
        } else {
            bail!(
                "{} holds no filter project pwx knows (Cargo.toml, package.json, go.mod, or a \
                 Makefile with .cc sources): create one with `pwx new NAME`",
                dir.display()
            );
        };
        Ok(Project {
            dir: dir.to_path_buf(),
            language,
            name,
        })
    }

    /// Where the built module goes.
    pub(crate) fn output(&self) -> PathBuf {
        self.dir.join("build").join(format!("{}.wasm", self.name))
    }
}

fn has_extension(dir: &Path, ext: &str) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.path().extension().is_some_and(|x| x == ext))
    })
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

fn cargo_name(path: &Path) -> anyhow::Result<String> {
    let manifest: toml::Table = toml::from_str(&read(path)?)
        .with_context(|| format!("{} is not valid TOML", path.display()))?;
    manifest
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str())
        .map(str::to_string)
        .with_context(|| format!("{} has no [package] name", path.display()))
}

fn npm_name(path: &Path) -> anyhow::Result<String> {
    let manifest: serde_json::Value = serde_json::from_str(&read(path)?)
        .with_context(|| format!("{} is not valid JSON", path.display()))?;
    let is_as = ["dependencies", "devDependencies"]
        .iter()
        .any(|d| manifest[d].get("assemblyscript").is_some());
    if !is_as {
        bail!(
            "{} does not depend on assemblyscript: pwx builds AssemblyScript filters only",
            path.display()
        );
    }
    manifest["name"]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("{} has no \"name\"", path.display()))
}

fn go_name(path: &Path) -> anyhow::Result<String> {
    read(path)?
        .lines()
        .find_map(|l| l.strip_prefix("module "))
        .map(|m| m.trim().rsplit('/').next().unwrap_or_default().to_string())
        .filter(|n| !n.is_empty())
        .with_context(|| format!("{} has no module line", path.display()))
}

fn make_name(path: &Path) -> anyhow::Result<String> {
    read(path)?
        .lines()
        .find_map(|l| l.strip_prefix("NAME := "))
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .with_context(|| format!("{} has no `NAME := <name>` line", path.display()))
}
