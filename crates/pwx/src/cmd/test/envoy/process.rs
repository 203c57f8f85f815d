//! One Envoy process for `pwx test --envoy`: started on a rendered bootstrap with ephemeral
//! ports, its admin endpoint read for the listeners' ports and stats, its log file read by
//! offset, stopped by PID.

use super::http1;
use anyhow::{Context as _, bail};
use std::collections::BTreeMap;
use std::io::BufReader;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long Envoy may take to listen (V8 compiles one VM per case).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Every log line starts with this marker; lines without it continue the previous one.
const MARK: &str = "@@";

/// A running Envoy.
pub(crate) struct Envoy {
    child: Child,
    admin: String,
    pub log_path: PathBuf,
    /// Listener name → port.
    pub ports: BTreeMap<String, u16>,
}

/// Envoy refused the bootstrap or died while starting: its exit status and its last log lines.
#[derive(Debug)]
pub(crate) struct StartFailure(pub String);

/// A line of Envoy's log.
#[derive(Debug, Clone)]
pub(crate) struct LogEntry {
    pub level: String,
    pub logger: String,
    pub message: String,
}

impl Envoy {
    /// Starts `envoy` on `config` (in `dir`) and waits until every listener in `listeners` has
    /// its port.
    pub(crate) fn start(
        envoy: &Path,
        config: &Path,
        dir: &Path,
        listeners: &[String],
    ) -> anyhow::Result<Result<Envoy, StartFailure>> {
        let admin_path = dir.join("admin-address");
        let log_path = dir.join("envoy.log");
        let stdout = std::fs::File::create(dir.join("envoy.stdout"))
            .with_context(|| format!("cannot write in {}", dir.display()))?;
        let child = Command::new(envoy)
            .arg("-c")
            .arg(config)
            .args([
                "--concurrency",
                "1",
                "--disable-hot-restart",
                "--use-dynamic-base-id",
            ])
            .arg("--admin-address-path")
            .arg(&admin_path)
            .arg("--log-path")
            .arg(&log_path)
            .args(["--log-format", &format!("{MARK}%l|%n|%v")])
            .args([
                "--log-level",
                "warning",
                "--component-log-level",
                "wasm:trace",
            ])
            .args(["--file-flush-interval-msec", "20", "--drain-time-s", "0"])
            .stdin(Stdio::null())
            .stdout(stdout.try_clone()?)
            .stderr(stdout)
            .spawn()
            .with_context(|| format!("cannot start {}", envoy.display()))?;
        let mut envoy = Envoy {
            child,
            admin: String::new(),
            log_path,
            ports: BTreeMap::new(),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = envoy.child.try_wait()? {
                let tail = envoy.failure_tail(dir);
                return Ok(Err(StartFailure(format!(
                    "Envoy exited ({status}): {tail}"
                ))));
            }
            if envoy.admin.is_empty() {
                envoy.admin = std::fs::read_to_string(&admin_path)
                    .map(|s| s.trim().to_string())
                    .unwrap_or_default();
            }
            if !envoy.admin.is_empty()
                && let Ok(text) = envoy.get("/listeners?format=json")
            {
                envoy.ports = listener_ports(&text);
                if listeners.iter().all(|l| envoy.ports.contains_key(l)) {
                    return Ok(Ok(envoy));
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "Envoy did not listen within {START_TIMEOUT:?} (log: {})",
                    envoy.log_path.display()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The last meaningful lines Envoy wrote (log file and stdout/stderr).
    fn failure_tail(&self, dir: &Path) -> String {
        let mut text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        text.push_str(&std::fs::read_to_string(dir.join("envoy.stdout")).unwrap_or_default());
        let lines: Vec<String> = text
            .lines()
            .map(|l| {
                l.strip_prefix(MARK)
                    .and_then(|l| l.splitn(3, '|').nth(2))
                    .unwrap_or(l)
                    .to_string()
            })
            .filter(|l| {
                !l.trim().is_empty()
                    && (l.contains("rror") || l.contains("wasm log") || l.contains("nable"))
            })
            .collect();
        let tail: Vec<String> = lines.into_iter().rev().take(6).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
    }

    /// A GET on the admin endpoint; the body.
    pub(crate) fn get(&self, path: &str) -> anyhow::Result<String> {
        let mut stream = TcpStream::connect(&self.admin)
            .with_context(|| format!("cannot reach Envoy's admin at {}", self.admin))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        http1::write_message(
            &mut stream,
            &format!("GET {path} HTTP/1.1"),
            &[
                ("host".into(), "admin".into()),
                ("connection".into(), "close".into()),
            ],
            &[],
            &[],
        )?;
        let response = http1::read_message(&mut BufReader::new(stream), true, false)?
            .ok_or_else(|| anyhow::anyhow!("Envoy's admin closed the connection"))?;
        Ok(String::from_utf8_lossy(&response.body).into_owned())
    }

    /// `wasmcustom.*` stats by their name without the prefix.
    pub(crate) fn metrics(&self) -> anyhow::Result<BTreeMap<String, i64>> {
        let text = self.get("/stats?format=json&filter=%5Ewasmcustom%5C.")?;
        let doc: serde_json::Value =
            serde_json::from_str(&text).context("Envoy's /stats is not JSON")?;
        let mut out = BTreeMap::new();
        for stat in doc["stats"].as_array().into_iter().flatten() {
            if let (Some(name), Some(value)) = (stat["name"].as_str(), stat["value"].as_i64()) {
                out.insert(
                    name.strip_prefix("wasmcustom.").unwrap_or(name).to_string(),
                    value,
                );
            }
        }
        Ok(out)
    }

    /// The log file's size now (where the next case's lines start).
    pub(crate) fn log_offset(&self) -> u64 {
        std::fs::metadata(&self.log_path).map_or(0, |m| m.len())
    }

    /// Waits until the log file stopped growing for a moment (Envoy flushes it every 20 ms).
    pub(crate) fn wait_quiet(&self) {
        let settle = Duration::from_millis(120);
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut last = self.log_offset();
        let mut since = Instant::now();
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            let now = self.log_offset();
            if now != last {
                last = now;
                since = Instant::now();
            } else if since.elapsed() >= settle {
                return;
            }
        }
    }

    /// The log entries written since `offset`.
    pub(crate) fn log_since(&self, offset: u64) -> Vec<LogEntry> {
        let bytes = std::fs::read(&self.log_path).unwrap_or_default();
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        parse_log(&String::from_utf8_lossy(&bytes[start..]))
    }

    /// Stops Envoy by PID (SIGTERM, SIGKILL after 10 s).
    pub(crate) fn stop(mut self) {
        crate::cmd::deploy::stop_child(&mut self.child);
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            crate::cmd::deploy::stop_child(&mut self.child);
        }
    }
}

fn listener_ports(text: &str) -> BTreeMap<String, u16> {
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(text) else {
        return BTreeMap::new();
    };
    doc["listener_statuses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| {
            let port = l["local_address"]["socket_address"]["port_value"].as_u64()?;
            Some((l["name"].as_str()?.to_string(), u16::try_from(port).ok()?))
        })
        .filter(|(_, port)| *port != 0)
        .collect()
}

fn parse_log(text: &str) -> Vec<LogEntry> {
    let mut entries: Vec<LogEntry> = Vec::new();
    for line in text.split('\n') {
        if let Some(rest) = line.strip_prefix(MARK) {
            let mut parts = rest.splitn(3, '|');
            entries.push(LogEntry {
                level: parts.next().unwrap_or_default().to_string(),
                logger: parts.next().unwrap_or_default().to_string(),
                message: parts.next().unwrap_or_default().to_string(),
            });
        } else if let Some(last) = entries.last_mut()
            && !line.is_empty()
        {
            last.message.push('\n');
            last.message.push_str(line);
        }
    }
    entries
}

/// The lines a filter logged (`wasm log<prefix>: <message>`), every level (Envoy runs with
/// `wasm:trace`, and pwx test keeps every line too), as `(level, message)`.
pub(crate) fn filter_logs(entries: &[LogEntry]) -> Vec<(String, String)> {
    entries
        .iter()
        .filter(|e| e.logger == "wasm")
        .filter_map(|e| {
            let rest = e.message.strip_prefix("wasm log")?;
            let (_, message) = rest.split_once(": ").or_else(|| rest.split_once(':'))?;
            Some((e.level.clone(), message.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn filter_lines_are_found_and_continued() {
        let log = "@@info|wasm|wasm log pwx-test  case-1: denied /x\nsecond line\n@@debug|wasm|wasm log pwx-test  case-1: quiet\n@@info|main|other\n";
        let lines = filter_logs(&parse_log(log));
        assert_eq!(
            lines,
            vec![
                ("info".to_string(), "denied /x\nsecond line".to_string()),
                ("debug".to_string(), "quiet".to_string())
            ]
        );
    }
}
