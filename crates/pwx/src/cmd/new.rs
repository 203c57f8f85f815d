//! `pwx new NAME [--lang L]`: writes a complete filter project (root and HTTP contexts,
//! configuration parsing, tests.yaml, README, envoy.yaml, an Istio WasmPlugin) from the
//! templates embedded in the binary, with SDK versions pinned.

use crate::project::Language;
use anyhow::{Context as _, bail};
use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};

/// Arguments of `pwx new`.
#[derive(clap::Args)]
pub(crate) struct NewArgs {
    /// Project name: lower-case letters, digits and '-', starting with a letter. Also the
    /// directory created (unless --dir) and the module's name (build/NAME.wasm).
    name: String,
    /// Language of the filter; asked interactively when omitted on a terminal.
    #[arg(long, short)]
    lang: Option<Language>,
    /// Directory to create (default: ./NAME). It must not exist or be empty.
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// One file of a template: its path in the project and its text.
type File = (&'static str, &'static str);

macro_rules! template {
    ($($path:literal => $file:literal),* $(,)?) => {
        &[$(($path, include_str!(concat!("../../templates/", $file)))),*]
    };
}

const COMMON: &[File] = template![
    "README.md" => "common/README.md",
    "config.json" => "common/config.json",
    "tests.yaml" => "common/tests.yaml",
    "envoy.yaml" => "common/envoy.yaml",
    "wasmplugin.yaml" => "common/wasmplugin.yaml",
];

const RUST: &[File] = template![
    "Cargo.toml" => "rust/Cargo.toml.tmpl",
    "src/lib.rs" => "rust/src/lib.rs",
    ".gitignore" => "rust/gitignore",
];

const ASSEMBLYSCRIPT: &[File] = template![
    "package.json" => "assemblyscript/package.json",
    "package-lock.json" => "assemblyscript/package-lock.json",
    "assembly/index.ts" => "assemblyscript/assembly/index.ts",
    "assembly/json.ts" => "assemblyscript/assembly/json.ts",
    ".gitignore" => "assemblyscript/gitignore",
];

const CPP: &[File] = template![
    "filter.cc" => "cpp/filter.cc",
    "Makefile" => "cpp/Makefile",
    "config.json" => "cpp/config.json",
    ".gitignore" => "cpp/gitignore",
];

const GO: &[File] = template![
    "main.go" => "go/main.go",
    "go.mod" => "go/go.mod",
    ".gitignore" => "go/gitignore",
];

/// The language-specific parts of the README.
struct Docs {
    files: &'static str,
    config: &'static str,
    build: &'static str,
}

const HEADERS_CONFIG: &str = "`config.json`:\n\n```json\n{{config_json}}```\n\n\
| field | type | meaning |\n|---|---|---|\n\
| `request_headers` | object of name → string | added to every request before it goes upstream |\n\
| `response_headers` | object of name → string | added to every response |\n\
| `deny_path_prefixes` | array of paths | requests whose path starts with one get a 403 |";

fn docs(language: Language) -> Docs {
    match language {
        Language::Rust => Docs {
            files: "| `src/lib.rs` | the filter: root context (configuration), HTTP context, unit tests of the configuration parser |\n\
                    | `Cargo.toml` | `proxy-wasm = \"=0.2.5\"`, serde; a `[workspace]` of its own; small release profile |",
            config: HEADERS_CONFIG,
            build: "```sh\npwx build        # cargo build --release --target wasm32-wasip1 (adds the target with rustup when missing)\n\
                    cargo test       # unit tests of the configuration parser (native)\n```\n\n\
                    Needs Rust (rustup). The module is copied to `build/{{name}}.wasm`.",
        },
        Language::AssemblyScript => Docs {
            files: "| `assembly/index.ts` | the filter: root context (configuration), HTTP context |\n\
                    | `assembly/json.ts` | a strict JSON parser (AssemblyScript 0.14 has none) |\n\
                    | `package.json`, `package-lock.json` | `assemblyscript` 0.14.13 and `@solo-io/proxy-runtime` 0.1.8, pinned (newer AssemblyScript does not compile that runtime) |",
            config: "A configuration is required (proxy-runtime 0.1.8 crashes the VM on an empty one).\n\n\
                     `config.json`:\n\n```json\n{{config_json}}```\n\n\
                     | field | type | meaning |\n|---|---|---|\n\
                     | `request_headers` | object of name → string | added to every request before it goes upstream |\n\
                     | `response_headers` | object of name → string | added to every response |\n\
                     | `deny_path_prefixes` | array of paths | requests whose path starts with one get a 403 |",
            build: "```sh\npwx build        # npm ci (first time), then npm run build\n```\n\n\
                    Needs Node.js and npm. `npm run build` alone also writes `build/{{name}}.wasm`.",
        },
        Language::Cpp => Docs {
            files: "| `filter.cc` | the filter: root context (configuration), HTTP context |\n\
                    | `Makefile` | clang++ for wasm32-wasi with the proxy-wasm C++ SDK |",
            config: "`config.json`:\n\n```json\n{{config_json}}```\n\n\
                     `deny_path_prefixes`: requests whose path starts with one get a 403. The headers the filter adds are \
                     fixed in `filter.cc` (`x-{{name}}: on` upstream, `x-served-by: {{name}}` downstream).",
            build: "Needs a clang with the wasm32 target and a WASI sysroot **with libc++** (wasi-sdk has both) and the \
                    proxy-wasm C++ SDK sources, pinned to the commit Envoy uses:\n\n\
                    ```sh\n# wasi-sdk (clang, lld, wasi-libc, libc++): unpack a release to /opt/wasi-sdk\n\
                    git clone https://github.com/proxy-wasm/proxy-wasm-cpp-sdk\n\
                    git -C proxy-wasm-cpp-sdk checkout e5256b0c5463ea9961965ad5de3e379e00486640\n\
                    export PROXY_WASM_CPP_SDK=$PWD/proxy-wasm-cpp-sdk\n\
                    pwx build        # runs make; or: make WASI_SYSROOT=/opt/wasi-sdk/share/wasi-sysroot\n```\n\n\
                    `pwx build` checks each of these first and says what is missing.",
        },
        Language::Go => Docs {
            files: "| `main.go` | the filter: VM and plugin contexts (configuration), HTTP context |\n\
                    | `go.mod` | Go 1.24, `github.com/proxy-wasm/proxy-wasm-go-sdk` pinned to a commit (it has no release tags) |",
            config: HEADERS_CONFIG,
            build: "Needs Go 1.24 or newer (WASI reactors, `go:wasmexport`):\n\n\
                    ```sh\ngo mod tidy      # fetches the SDK, writes go.sum\n\
                    pwx build        # GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o build/{{name}}.wasm\n```",
        },
    }
}

pub(crate) fn execute(args: NewArgs) -> anyhow::Result<()> {
    validate_name(&args.name)?;
    let language = match args.lang {
        Some(language) => language,
        None => pick_language()?,
    };
    let dir = args.dir.unwrap_or_else(|| PathBuf::from(&args.name));
    if dir.exists()
        && std::fs::read_dir(&dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .next()
            .is_some()
    {
        bail!(
            "{} already exists and is not empty: choose another name or --dir",
            dir.display()
        );
    }
    let files = render(&args.name, language)?;
    for (path, text) in &files {
        let target = dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&target, text)
            .with_context(|| format!("cannot write {}", target.display()))?;
    }
    println!(
        "created {} ({} filter, {} files)",
        dir.display(),
        language.label(),
        files.len()
    );
    println!("{}", next_steps(&dir, language));
    Ok(())
}

/// The project's files, placeholders substituted.
pub(crate) fn render(name: &str, language: Language) -> anyhow::Result<Vec<(String, String)>> {
    let specific = match language {
        Language::Rust => RUST,
        Language::AssemblyScript => ASSEMBLYSCRIPT,
        Language::Cpp => CPP,
        Language::Go => GO,
    };
    // Language files override common ones of the same path (C++ has its own config.json).
    let mut files: Vec<File> = COMMON
        .iter()
        .filter(|(path, _)| !specific.iter().any(|(p, _)| p == path))
        .copied()
        .collect();
    files.extend_from_slice(specific);
    let snake = name.replace('-', "_");
    let config = files
        .iter()
        .find(|(p, _)| *p == "config.json")
        .map(|(_, text)| text.replace("{{name}}", name))
        .context("template without config.json")?;
    let compact = serde_json::to_string(
        &serde_json::from_str::<serde_json::Value>(&config).context("template config.json")?,
    )?;
    let docs = docs(language);
    Ok(files
        .iter()
        .map(|(path, text)| {
            let text = text
                .replace("{{files_table}}", docs.files)
                .replace("{{config_doc}}", docs.config)
                .replace("{{build_doc}}", docs.build)
                .replace("{{config_json_compact}}", &compact)
                .replace("{{config_json}}", &config)
                .replace("{{language}}", language.label())
                .replace("{{name_snake}}", &snake)
                .replace("{{name}}", name);
            (path.to_string(), text)
        })
        .collect())
}

fn validate_name(name: &str) -> anyhow::Result<()> {
    let ok = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok {
        bail!(
            "invalid project name {name:?}: use lower-case letters, digits and '-', starting with \
             a letter (at most 64 characters), e.g. my-filter"
        );
    }
    Ok(())
}

/// Asks for the language on a terminal; without one, says how to choose.
fn pick_language() -> anyhow::Result<Language> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!("no --lang given and no terminal to ask on: pass --lang rust|assemblyscript|cpp|go");
    }
    let mut out = std::io::stderr();
    writeln!(out, "Language of the filter:")?;
    for (i, language) in Language::ALL.iter().enumerate() {
        let note = match language {
            Language::Rust | Language::AssemblyScript => "",
            Language::Cpp | Language::Go => " (toolchain not checked by pwx's CI)",
        };
        writeln!(out, "  {}) {}{note}", i + 1, language.label())?;
    }
    loop {
        write!(out, "choose 1-{} [1]: ", Language::ALL.len())?;
        out.flush()?;
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            bail!("no language chosen (end of input): pass --lang");
        }
        let line = line.trim();
        if line.is_empty() {
            return Ok(Language::Rust);
        }
        match line.parse::<usize>() {
            Ok(n) if (1..=Language::ALL.len()).contains(&n) => return Ok(Language::ALL[n - 1]),
            _ => writeln!(out, "  '{line}' is not one of the numbers above")?,
        }
    }
}

fn next_steps(dir: &Path, language: Language) -> String {
    let cd = format!("  cd {}", dir.display());
    match language {
        Language::Rust | Language::AssemblyScript => {
            format!("next:\n{cd}\n  pwx build\n  pwx test")
        }
        Language::Cpp => format!(
            "next:\n{cd}\n  (install wasi-sdk and check out proxy-wasm-cpp-sdk: see README.md, Build)\n  \
             pwx build\n  pwx test\nnote: pwx cannot install the C++ toolchain; `pwx build` says what is missing"
        ),
        Language::Go => format!(
            "next:\n{cd}\n  go mod tidy   (Go 1.24 or newer)\n  pwx build\n  pwx test\n\
             note: pwx cannot install Go; `pwx build` says what is missing"
        ),
    }
}
