//! The subcommands.

pub(crate) mod build;
mod check;
mod deploy;
mod images;
mod new;
mod pull;
mod push;
mod run;
mod schema;
mod test;

/// Every subcommand.
#[derive(clap::Subcommand)]
pub(crate) enum Command {
    /// Run filters in front of an upstream (`--upstream echo` for the built-in one).
    Run(Box<run::RunArgs>),
    /// Report everything a proxy (Envoy, Istio, pwx) would reject in a module, with the fix.
    Check(check::CheckArgs),
    /// Package a module as an OCI image (compat or Wasm artifact) and push it to a registry.
    Push(push::PushArgs),
    /// Pull a module image into the local cache (and optionally to a file).
    Pull(pull::PullArgs),
    /// List the modules in the local cache, with image digest, module sha256 and ABI.
    Images(images::ImagesArgs),
    /// Render Envoy and Istio configuration for a filter, or run it in the real Envoy.
    Deploy(Box<deploy::DeployArgs>),
    /// Print the JSON Schema of pwx's YAML configuration format.
    Schema(schema::SchemaArgs),
    /// Create a filter project (Rust, AssemblyScript, C++ or Go) ready to build and test.
    New(new::NewArgs),
    /// Build the filter project in a directory into build/NAME.wasm (release mode).
    Build(build::BuildArgs),
    /// Run declarative test cases (tests.yaml) against the built module on the pwx engine.
    Test(test::TestArgs),
}

pub(crate) fn execute(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run(args) => run::execute(*args),
        Command::Check(args) => check::execute(args),
        Command::Push(args) => push::execute(args),
        Command::Pull(args) => pull::execute(args),
        Command::Images(args) => images::execute(args),
        Command::Deploy(args) => deploy::execute(*args),
        Command::Schema(args) => schema::execute(args),
        Command::New(args) => new::execute(args),
        Command::Build(args) => build::execute(args),
        Command::Test(args) => test::execute(args),
    }
}
