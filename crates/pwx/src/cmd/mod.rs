//! The subcommands.

mod run;
mod schema;

/// Every subcommand.
#[derive(clap::Subcommand)]
pub(crate) enum Command {
    /// Run filters in front of an upstream (`--upstream echo` for the built-in one).
    Run(run::RunArgs),
    /// Print the JSON Schema of pwx's YAML configuration format.
    Schema(schema::SchemaArgs),
}

pub(crate) fn execute(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run(args) => run::execute(args),
        Command::Schema(args) => schema::execute(args),
    }
}
