//! Writing rendered artefacts (stdout or files) and validating each one: Envoy configs with the real
//! `envoy --mode validate`, Istio manifests against the Istio CRD schemas.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde_json::Value;

use super::bootstrap::inline_ecds;
use super::crd::CrdSet;
use super::envoy_bin::{find_envoy, validate_bootstrap};

/// Environment variable naming the Istio CRD file used for validation.
pub(crate) const ISTIO_CRDS_ENV: &str = "PWX_ISTIO_CRDS";

/// Where rendered artefacts go and how they are checked.
#[derive(clap::Args, Clone, Default)]
pub(crate) struct OutputArgs {
    /// Write the files into this directory instead of printing them on stdout.
    #[arg(short, long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Fail unless every artefact is validated (Envoy configs with `envoy --mode validate`,
    /// Istio manifests against the CRD schemas). Default: validate what can be, and say what
    /// could not.
    #[arg(long, conflicts_with = "no_validate")]
    pub validate: bool,
    /// Skip validation.
    #[arg(long)]
    pub no_validate: bool,
    /// Envoy binary for validation (default: $ENVOY_BIN, else `envoy` on PATH).
    #[arg(long, value_name = "PATH")]
    pub envoy: Option<PathBuf>,
    /// Istio CRD YAML to validate manifests against (default: $PWX_ISTIO_CRDS).
    #[arg(long, value_name = "FILE")]
    pub istio_crds: Option<PathBuf>,
}

/// One rendered document.
pub(crate) struct Rendered {
    /// File name when written with `--out`.
    pub file_name: String,
    pub kind: RenderedKind,
    pub doc: Value,
}

/// What a rendered document is, which decides how it is validated.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum RenderedKind {
    /// An Envoy bootstrap (`envoy -c`).
    EnvoyBootstrap,
    /// The ECDS file a bootstrap points at (checked inlined into that bootstrap).
    EnvoyExtensionConfig,
    /// A Kubernetes manifest of an Istio kind.
    Istio,
}

/// YAML text of `doc`.
pub(crate) fn to_yaml(doc: &Value) -> anyhow::Result<String> {
    serde_yaml::to_string(doc).context("encoding YAML")
}

/// Writes (or prints) `docs`, then validates them as `args` says.
pub(crate) fn emit(docs: &[Rendered], args: &OutputArgs) -> anyhow::Result<()> {
    match &args.out {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            for d in docs {
                let path = dir.join(&d.file_name);
                std::fs::write(&path, to_yaml(&d.doc)?)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                eprintln!("wrote {}", path.display());
            }
            validate(docs, args, dir)
        }
        None => {
            // Validate before printing, so nothing invalid reaches a pipe.
            let scratch = tempdir()?;
            for d in docs {
                std::fs::write(scratch.path().join(&d.file_name), to_yaml(&d.doc)?)
                    .context("writing a scratch copy for validation")?;
            }
            validate(docs, args, scratch.path())?;
            let mut text = String::new();
            for (i, d) in docs.iter().enumerate() {
                if i > 0 {
                    text.push_str("---\n");
                }
                text.push_str(&to_yaml(&d.doc)?);
            }
            crate::progress::write_stdout(&text)
        }
    }
}

fn tempdir() -> anyhow::Result<TempDir> {
    let base = std::env::temp_dir();
    for attempt in 0..100u32 {
        let path = base.join(format!("pwx-deploy-{}-{attempt}", std::process::id()));
        if std::fs::create_dir(&path).is_ok() {
            return Ok(TempDir(path));
        }
    }
    bail!("cannot create a scratch directory in {}", base.display())
}

/// A scratch directory removed on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new() -> anyhow::Result<TempDir> {
        tempdir()
    }
    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Validates `docs`, whose files are in `dir`.
fn validate(docs: &[Rendered], args: &OutputArgs, dir: &Path) -> anyhow::Result<()> {
    if args.no_validate {
        eprintln!("not validated (--no-validate)");
        return Ok(());
    }
    let has = |k: RenderedKind| docs.iter().any(|d| d.kind == k);
    if has(RenderedKind::EnvoyBootstrap) {
        match find_envoy(args.envoy.as_deref()) {
            Ok(envoy) => validate_envoy(docs, dir, &envoy)?,
            Err(e) if args.validate => return Err(e),
            Err(e) => eprintln!("note: Envoy configs not validated: {e:#}"),
        }
    }
    if has(RenderedKind::Istio) {
        let crds = args
            .istio_crds
            .clone()
            .or_else(|| std::env::var_os(ISTIO_CRDS_ENV).map(PathBuf::from));
        match crds {
            Some(path) => {
                let set = CrdSet::load(&path)?;
                for d in docs.iter().filter(|d| d.kind == RenderedKind::Istio) {
                    set.validate(&d.doc).map_err(|errors| {
                        anyhow::anyhow!(
                            "{} does not satisfy the Istio CRD schema in {}: {}",
                            d.file_name,
                            path.display(),
                            errors.join("; ")
                        )
                    })?;
                    eprintln!("validated {} against {}", d.file_name, path.display());
                }
            }
            None if args.validate => bail!(
                "--validate needs the Istio CRDs: pass --istio-crds FILE or set {ISTIO_CRDS_ENV} (the CRD YAML from Istio's manifests/charts/base)"
            ),
            None => eprintln!(
                "note: Istio manifests not validated: pass --istio-crds FILE or set {ISTIO_CRDS_ENV}"
            ),
        }
    }
    Ok(())
}

fn validate_envoy(docs: &[Rendered], dir: &Path, envoy: &Path) -> anyhow::Result<()> {
    let bootstrap = docs.iter().find(|d| d.kind == RenderedKind::EnvoyBootstrap);
    let Some(bootstrap) = bootstrap else {
        return Ok(());
    };
    validate_bootstrap(envoy, &dir.join(&bootstrap.file_name))?;
    eprintln!(
        "validated {} with {} --mode validate",
        bootstrap.file_name,
        envoy.display()
    );
    for ext in docs
        .iter()
        .filter(|d| d.kind == RenderedKind::EnvoyExtensionConfig)
    {
        let inlined = inline_ecds(&bootstrap.doc, &ext.doc).ok_or_else(|| {
            anyhow::anyhow!(
                "internal error: {} has no extension config to check",
                ext.file_name
            )
        })?;
        let scratch = tempdir()?;
        let path = scratch.path().join("inlined.yaml");
        std::fs::write(&path, to_yaml(&inlined)?).context("writing a scratch bootstrap")?;
        validate_bootstrap(envoy, &path)
            .with_context(|| format!("{} (checked inlined into the bootstrap)", ext.file_name))?;
        eprintln!(
            "validated {} with {} --mode validate",
            ext.file_name,
            envoy.display()
        );
    }
    Ok(())
}
