//! `pwx schema`: the JSON Schema of pwx's YAML configuration format, for editors and CI.

use anyhow::Context;
use std::path::PathBuf;

/// Arguments of `pwx schema`.
#[derive(clap::Args)]
pub(crate) struct SchemaArgs {
    /// Write the schema to this file instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
}

pub(crate) fn execute(args: SchemaArgs) -> anyhow::Result<()> {
    let schema = pwx_config::schema() + "\n";
    match args.output {
        Some(path) => std::fs::write(&path, schema)
            .with_context(|| format!("cannot write the schema to {}", path.display())),
        None => {
            print!("{schema}");
            Ok(())
        }
    }
}
