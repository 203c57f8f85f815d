//! `pwx run` once it serves: reload on SIGHUP, on `POST /reload` (admin endpoint) and when a
//! watched file changes (the configuration file, local module files); drain on SIGTERM or
//! Ctrl-C, and stop at once on a second one.

use super::watch::FileWatch;
use super::{Loaded, RunArgs};
use pwx_host::{Engine, Limits};
use pwx_proxy::{ClusterNames, Proxy, ReloadRequest};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

/// How long watched files must be quiet before a reload (a build writes in several steps).
const SETTLE: Duration = Duration::from_millis(300);

/// What a reload rebuilds the configuration from.
pub(super) struct Reloader<'a> {
    pub(super) args: &'a RunArgs,
    pub(super) limits: Limits,
    pub(super) workers: usize,
    pub(super) engine: &'a Engine,
    pub(super) names: Arc<ClusterNames>,
}

/// Why a reload runs.
enum Trigger {
    Hangup,
    Admin(ReloadRequest),
    File(PathBuf),
}

impl Trigger {
    fn describe(&self) -> String {
        match self {
            Trigger::Hangup => "SIGHUP".into(),
            Trigger::Admin(_) => "POST /reload".into(),
            Trigger::File(path) => format!("{} changed", path.display()),
        }
    }
}

impl Reloader<'_> {
    /// Re-reads the configuration and modules and hands them to the proxy; on success, the
    /// files the new configuration came from.
    fn reload(&self, proxy: &Proxy, why: &str) -> Result<Vec<PathBuf>, String> {
        let loaded = match super::load(self.args, self.limits.clone(), self.workers) {
            Ok(loaded) => loaded,
            Err(error) => {
                let message = format!("{error:#}");
                proxy.reload_failed(&message);
                eprintln!(
                    "pwx: reload ({why}) failed: {message}\npwx: generation {} keeps serving",
                    proxy.generation()
                );
                return Err(message);
            }
        };
        let Loaded {
            config, summary, ..
        } = loaded;
        let files = super::watched_files(self.args, &config);
        let previous = self.names.set(&config);
        match proxy.reload(config, self.engine) {
            Ok(done) => {
                eprintln!(
                    "pwx: reloaded ({why}): generation {} serving, {summary}",
                    done.generation
                );
                Ok(files)
            }
            Err(error) => {
                self.names.restore(previous);
                let message = match error {
                    pwx_proxy::ProxyError::Reload(message) => message,
                    other => other.to_string(),
                };
                eprintln!(
                    "pwx: reload ({why}) failed: {message}\npwx: generation {} keeps serving",
                    proxy.generation()
                );
                Err(message)
            }
        }
    }
}

/// Serves until SIGTERM or Ctrl-C, reloading on the way; then drains for up to
/// `drain_timeout`.
pub(super) fn serve(
    mut proxy: Proxy,
    reloader: Reloader<'_>,
    files: Vec<PathBuf>,
    watch: bool,
    drain_timeout: Duration,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let mut hangup = signal(SignalKind::hangup())?;
        let mut terminate = signal(SignalKind::terminate())?;
        let mut admin = proxy.reload_requests();
        let (changed_tx, mut changed) = mpsc::unbounded_channel();
        let start_watch = |files: &[PathBuf]| -> Option<FileWatch> {
            if !watch || files.is_empty() {
                return None;
            }
            match FileWatch::start(files, changed_tx.clone()) {
                Ok(watch) => Some(watch),
                Err(error) => {
                    eprintln!("pwx: cannot watch the configuration files ({error}); reload with SIGHUP or POST /reload");
                    None
                }
            }
        };
        let mut watching = start_watch(&files);
        let mut watched = files;
        if let Some(watching) = &watching {
            let names: Vec<String> = watching
                .files()
                .iter()
                .map(|f| f.display().to_string())
                .collect();
            eprintln!(
                "pwx: reloads on SIGHUP, POST /reload, or a change to {}",
                names.join(", ")
            );
        }
        let why = loop {
            let trigger = tokio::select! {
                result = tokio::signal::ctrl_c() => {
                    result?;
                    break "Ctrl-C";
                }
                _ = terminate.recv() => break "SIGTERM",
                _ = hangup.recv() => Trigger::Hangup,
                Some(request) = next_request(&mut admin) => Trigger::Admin(request),
                Some(path) = changed.recv() => {
                    // Let the writer finish: reload once the files were quiet for a moment.
                    while let Ok(Some(_)) = tokio::time::timeout(SETTLE, changed.recv()).await {}
                    Trigger::File(path)
                }
            };
            let outcome = reloader.reload(&proxy, &trigger.describe());
            if let Ok(files) = &outcome
                && watched.as_slice() != files.as_slice()
            {
                // The new watch starts before the old one stops: no change is missed between.
                let next = start_watch(files);
                drop(std::mem::replace(&mut watching, next));
                watched = files.clone();
            }
            if let Trigger::Admin(request) = trigger {
                request.respond(outcome.map(|_| format!("generation {} serving", proxy.generation())));
            }
        };
        eprintln!(
            "pwx: {why}: draining (open connections get up to {} s; {why} again stops now)",
            drain_timeout.as_secs_f64()
        );
        let mut draining = tokio::task::spawn_blocking(move || proxy.drain(drain_timeout));
        tokio::select! {
            _ = &mut draining => eprintln!("pwx: stopped"),
            _ = tokio::signal::ctrl_c() => stop_now(),
            _ = terminate.recv() => stop_now(),
        }
        anyhow::Ok(())
    })
}

/// The next reload request from the admin endpoint, if it takes any.
async fn next_request(
    admin: &mut Option<mpsc::UnboundedReceiver<ReloadRequest>>,
) -> Option<ReloadRequest> {
    match admin {
        Some(requests) => requests.recv().await,
        None => std::future::pending().await,
    }
}

/// A second signal while draining: leave without waiting for open connections.
fn stop_now() -> ! {
    eprintln!("pwx: stopping now, without waiting for open connections");
    std::process::exit(1)
}
