//! Where module log lines go, with Envoy's flags: `--log-path FILE`, `--log-format` (Envoy's
//! `%l`, `%n`, `%v`, `%%`), `-l LEVEL` and `--component-log-level wasm:LEVEL`, so tools that
//! read Envoy's wasm log (the conformance runner among them) read pwx's the same way.

use anyhow::{Context, bail};
use pwx_abi::LogLevel;
use pwx_host::services::LogRecord;
use pwx_host::{LogSink, TracingLog};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Envoy-compatible logging flags.
#[derive(clap::Args)]
pub(crate) struct LogArgs {
    /// Write module log lines to this file instead of stderr (Envoy's `--log-path`).
    #[arg(long, value_name = "FILE")]
    log_path: Option<PathBuf>,
    /// Format of each line in `--log-path`: `%l` level, `%n` logger (`wasm`), `%v` message.
    #[arg(long, value_name = "FORMAT", default_value = "[%l][%n] %v")]
    log_format: String,
    /// Level of every logger (Envoy's `-l`): trace, debug, info, warning, error, critical.
    #[arg(short = 'l', long = "log-level", value_name = "LEVEL")]
    log_level: Option<String>,
    /// Per-logger levels, `wasm:LEVEL` (the only logger pwx has for modules).
    #[arg(long, value_name = "LOGGER:LEVEL[,…]")]
    component_log_level: Option<String>,
    /// Write the admin address (`host:port`) to this file once serving (Envoy's
    /// `--admin-address-path`).
    #[arg(long, value_name = "FILE")]
    pub(crate) admin_address_path: Option<PathBuf>,
}

fn parse_level(text: &str) -> anyhow::Result<LogLevel> {
    Ok(match text {
        "trace" => LogLevel::Trace,
        "debug" => LogLevel::Debug,
        "info" => LogLevel::Info,
        "warning" | "warn" => LogLevel::Warn,
        "error" => LogLevel::Error,
        "critical" => LogLevel::Critical,
        other => {
            bail!("unknown log level {other:?}; use trace, debug, info, warning, error or critical")
        }
    })
}

/// Envoy's name for a level.
fn level_name(level: LogLevel) -> &'static str {
    match level {
        LogLevel::Trace => "trace",
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warning",
        LogLevel::Error => "error",
        LogLevel::Critical => "critical",
    }
}

impl LogArgs {
    /// The level modules log at: `--component-log-level wasm:…`, else `-l`, else info.
    fn wasm_level(&self) -> anyhow::Result<LogLevel> {
        if let Some(components) = &self.component_log_level {
            for part in components.split(',') {
                let Some((logger, level)) = part.split_once(':') else {
                    bail!("--component-log-level {part:?}: expected LOGGER:LEVEL, e.g. wasm:debug");
                };
                if logger == "wasm" {
                    return parse_level(level);
                }
            }
        }
        match &self.log_level {
            Some(level) => parse_level(level),
            None => Ok(LogLevel::Info),
        }
    }

    /// Where module logs go.
    pub(crate) fn sink(&self) -> anyhow::Result<Arc<dyn LogSink>> {
        let level = self.wasm_level()?;
        let Some(path) = &self.log_path else {
            return Ok(Arc::new(TracingLog { level }));
        };
        check_format(&self.log_format)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening the log file {}", path.display()))?;
        Ok(Arc::new(FileLog {
            file: Mutex::new(file),
            format: self.log_format.clone(),
            level,
        }))
    }
}

/// Refuses format specifiers pwx does not fill in, rather than printing them raw.
fn check_format(format: &str) -> anyhow::Result<()> {
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c == '%' {
            match chars.next() {
                Some('l' | 'n' | 'v' | '%') => {}
                other => bail!(
                    "--log-format {format:?}: %{} is not supported; pwx fills in %l (level), %n (logger) and %v (message)",
                    other.map(String::from).unwrap_or_default()
                ),
            }
        }
    }
    Ok(())
}

/// Module log lines in a file, one `write` per line so readers never see half a line.
struct FileLog {
    file: Mutex<std::fs::File>,
    format: String,
    level: LogLevel,
}

impl LogSink for FileLog {
    fn log(&self, record: &LogRecord<'_>) {
        if (record.level as u32) < (self.level as u32) {
            return;
        }
        let message = format!("wasm log{}: {}", record.envoy_prefix(), record.message);
        let mut line = String::with_capacity(self.format.len() + message.len() + 1);
        let mut chars = self.format.chars();
        while let Some(c) = chars.next() {
            match (c, c == '%') {
                (_, true) => match chars.next() {
                    Some('l') => line.push_str(level_name(record.level)),
                    Some('n') => line.push_str("wasm"),
                    Some('v') => line.push_str(&message),
                    Some(other) => line.push(other),
                    None => {}
                },
                (c, false) => line.push(c),
            }
        }
        line.push('\n');
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(error) = file.write_all(line.as_bytes()) {
            tracing::warn!(%error, "writing the module log file failed");
        }
    }

    fn level(&self) -> LogLevel {
        self.level
    }
}
