//! `pwx`: run, test and ship proxy-wasm filters. One file per subcommand under `cmd/`.

mod cmd;
mod module_summary;
mod project;

use clap::Parser;

/// Run, test and ship proxy-wasm filters with Envoy's behaviour.
#[derive(Parser)]
#[command(name = "pwx", version, about)]
struct Cli {
    #[command(subcommand)]
    command: cmd::Command,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PWX_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match cmd::execute(cli.command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
