//! `pwx deploy envoy`: renders a bootstrap with the filter and runs the real Envoy on it until
//! Ctrl-C or SIGTERM (forwarded to Envoy by its PID).

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::bootstrap::{BOOTSTRAP_FILE, BootstrapSpec, ListenerArgs, render};
use super::envoy_bin::find_envoy;
use super::filter::{Code, FilterArgs};
use super::output::{TempDir, to_yaml};

/// How long Envoy may take to start listening (the V8 compile of a large module included).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Arguments of `pwx deploy envoy`.
#[derive(clap::Args)]
pub(crate) struct EnvoyArgs {
    #[command(flatten)]
    filter: FilterArgs,
    #[command(flatten)]
    listener: ListenerArgs,
    /// Envoy binary (default: $ENVOY_BIN, else `envoy` on PATH).
    #[arg(long, value_name = "PATH")]
    envoy: Option<PathBuf>,
    /// Envoy's log level (trace, debug, info, warning, error, critical, off).
    #[arg(long, default_value = "warning")]
    log_level: String,
    /// Keep the rendered bootstrap in this directory (default: a temporary directory, removed on
    /// exit).
    #[arg(long, value_name = "DIR")]
    keep_config: Option<PathBuf>,
}

pub(crate) fn execute(args: EnvoyArgs) -> anyhow::Result<()> {
    let envoy = find_envoy(args.envoy.as_deref())?;
    let filter = args.filter.load()?;
    let spec = BootstrapSpec {
        listener: &args.listener,
        code: Code::Local(filter.module.path.clone()),
        ecds_path: None,
        module_url: None,
    };
    let rendered = render(&filter, &spec)?;
    let scratch = TempDir::new()?;
    let dir = args
        .keep_config
        .clone()
        .unwrap_or_else(|| scratch.path().to_path_buf());
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let config = dir.join(BOOTSTRAP_FILE);
    let bootstrap = rendered
        .first()
        .ok_or_else(|| anyhow::anyhow!("internal error: nothing rendered"))?;
    std::fs::write(&config, to_yaml(&bootstrap.doc)?)
        .with_context(|| format!("cannot write {}", config.display()))?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the signal runtime")?;
    runtime.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        // Registered before Envoy starts, so a signal at any moment reaches Envoy too.
        let mut interrupt = signal(SignalKind::interrupt()).context("installing a SIGINT handler")?;
        let mut terminate = signal(SignalKind::terminate()).context("installing a SIGTERM handler")?;
        let mut child = Command::new(&envoy)
            .arg("-c")
            .arg(&config)
            .arg("--disable-hot-restart")
            .arg("--log-level")
            .arg(&args.log_level)
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}", envoy.display()))?;
        let pid = child.id();
        let listen = args.listener.listen;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().context("waiting for Envoy")? {
                bail!(
                    "Envoy exited during start-up ({status}); its log above says why (config: {})",
                    config.display()
                );
            }
            if TcpStream::connect_timeout(&listen, Duration::from_millis(200)).is_ok() {
                break;
            }
            if Instant::now() > deadline {
                stop(&mut child);
                bail!("Envoy did not listen on {listen} within {START_TIMEOUT:?}; stopped it");
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = interrupt.recv() => { stop(&mut child); return Ok(()); }
                _ = terminate.recv() => { stop(&mut child); return Ok(()); }
            }
        }
        eprintln!(
            "envoy (pid {pid}) listening on http://{listen}: {} ({}, sha256 {}) in front of {}; Ctrl-C stops it",
            filter.name,
            filter.module.source,
            filter.module.sha256,
            args.listener
                .upstream
                .as_deref()
                .unwrap_or("a direct 200 response")
        );
        loop {
            if let Some(status) = child.try_wait().context("waiting for Envoy")? {
                if status.success() {
                    return Ok(());
                }
                bail!("Envoy exited ({status})");
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = interrupt.recv() => { stop(&mut child); return Ok(()); }
                _ = terminate.recv() => { stop(&mut child); return Ok(()); }
            }
        }
    })
}

/// Sends SIGTERM to Envoy by PID and waits for it (SIGKILL after 10 s).
pub(crate) fn stop(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: kill(2) with the PID of a child we spawned and have not reaped.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}
