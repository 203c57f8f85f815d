//! The subcommands.

mod run;

/// Every subcommand.
#[derive(clap::Subcommand)]
pub(crate) enum Command {
    /// Run filters in front of an upstream (`--upstream echo` for the built-in one).
    Run(run::RunArgs),
}

pub(crate) fn execute(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run(args) => run::execute(args),
    }
}
