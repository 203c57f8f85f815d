//! The subcommands.

mod build;
mod check;
mod new;
mod run;
mod test;

/// Every subcommand.
#[derive(clap::Subcommand)]
pub(crate) enum Command {
    /// Run filters in front of an upstream (`--upstream echo` for the built-in one).
    Run(run::RunArgs),
    /// Report everything a proxy (Envoy, Istio, pwx) would reject in a module, with the fix.
    Check(check::CheckArgs),
    /// Create a filter project (Rust, AssemblyScript, C++ or Go) ready to build and test.
    New(new::NewArgs),
    /// Build the filter project in a directory into build/NAME.wasm (release mode).
    Build(build::BuildArgs),
    /// Run declarative test cases (tests.yaml) against the built module on the pwx engine.
    Test(test::TestArgs),
}

pub(crate) fn execute(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run(args) => run::execute(args),
        Command::Check(args) => check::execute(args),
        Command::New(args) => new::execute(args),
        Command::Build(args) => build::execute(args),
        Command::Test(args) => test::execute(args),
    }
}
