//! The subcommands.

mod check;
mod run;

/// Every subcommand.
#[derive(clap::Subcommand)]
pub(crate) enum Command {
    /// Run filters in front of an upstream (`--upstream echo` for the built-in one).
    Run(run::RunArgs),
    /// Report everything a proxy (Envoy, Istio, pwx) would reject in a module, with the fix.
    Check(check::CheckArgs),
}

pub(crate) fn execute(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run(args) => run::execute(args),
        Command::Check(args) => check::execute(args),
    }
}
