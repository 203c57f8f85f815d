//! `pwx deploy`: Envoy bootstraps (inline or ECDS), Istio manifests (WasmPlugin, EnvoyFilter +
//! EXTENSION_CONFIG), and `pwx deploy envoy`, which runs the real Envoy with the filter.

pub(crate) mod bootstrap;
mod crd;
pub(crate) mod envoy_bin;
pub(crate) mod filter;
mod istio;
pub(crate) mod output;
mod run_envoy;

pub(crate) use run_envoy::stop as stop_child;

/// Arguments of `pwx deploy`.
#[derive(clap::Args)]
pub(crate) struct DeployArgs {
    #[command(subcommand)]
    target: DeployTarget,
}

#[derive(clap::Subcommand)]
enum DeployTarget {
    /// Render an Envoy bootstrap (envoy.yaml) that runs the filter: code from a local file or
    /// fetched by Envoy over http_uri with its sha256; `--ecds` serves the filter through
    /// extension config discovery from a file.
    Bootstrap(bootstrap::BootstrapArgs),
    /// Render Istio manifests: a WasmPlugin, or the EnvoyFilter + EXTENSION_CONFIG pair;
    /// `--apply` hands them to kubectl.
    Istio(istio::IstioArgs),
    /// Start the real Envoy locally with the filter in front of an upstream (like
    /// `wasme deploy envoy`), until Ctrl-C.
    Envoy(run_envoy::EnvoyArgs),
}

pub(crate) fn execute(args: DeployArgs) -> anyhow::Result<()> {
    match args.target {
        DeployTarget::Bootstrap(a) => bootstrap::execute(a),
        DeployTarget::Istio(a) => istio::execute(a),
        DeployTarget::Envoy(a) => run_envoy::execute(a),
    }
}
