//! Test support: a real `docker-registry` on 127.0.0.1 (stopped by PID on drop), a tiny HTTP file server, WAT modules.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const INSTALL_HINT: &str = "docker-registry is not installed: run `apt-get install docker-registry` (Debian package) — these integration tests need a real registry";

/// A running registry; killed by PID when dropped (also when the test panics).
pub struct TestRegistry {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl TestRegistry {
    /// Starts an anonymous registry.
    pub fn start() -> TestRegistry {
        Self::start_with(None)
    }

    /// Starts a registry requiring basic auth for `user`/`password`.
    pub fn start_with_auth(user: &str, password: &str) -> TestRegistry {
        Self::start_with(Some((user, password)))
    }

    /// `host:port` of the registry.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn start_with(auth: Option<(&str, &str)>) -> TestRegistry {
        let binary = find_in_path("docker-registry").unwrap_or_else(|| panic!("{INSTALL_HINT}"));
        let mut last_log = String::new();
        for _attempt in 0..3 {
            let dir = tempfile::tempdir().unwrap();
            let port = free_port();
            let mut config = format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("data").display()
            );
            if let Some((user, password)) = auth {
                let hash = bcrypt::hash(password, 4).unwrap();
                let htpasswd = dir.path().join("htpasswd");
                std::fs::write(&htpasswd, format!("{user}:{hash}\n")).unwrap();
                config.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: pwx-test\n    path: {}\n",
                    htpasswd.display()
                ));
            }
            let config_path = dir.path().join("config.yml");
            std::fs::write(&config_path, config).unwrap();
            let log_path = dir.path().join("registry.log");
            let log = std::fs::File::create(&log_path).unwrap();
            let child = Command::new(&binary)
                .arg("serve")
                .arg(&config_path)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
            let mut registry = TestRegistry { child, port, dir };
            if registry.wait_ready(Duration::from_secs(20)) {
                return registry;
            }
            last_log = std::fs::read_to_string(&log_path).unwrap_or_default();
            // dropping `registry` kills it; retry on another port
        }
        panic!("docker-registry did not come up on 127.0.0.1; its log:\n{last_log}");
    }

    fn wait_ready(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_status)) = self.child.try_wait() {
                return false;
            }
            if http_status(self.port, "/v2/").is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        // Child::kill signals exactly this process id.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The HTTP status of GET `path` on 127.0.0.1:`port`, if anything answers.
fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = [0u8; 64];
    let n = stream.read(&mut buf).ok()?;
    let head = std::str::from_utf8(&buf[..n]).ok()?;
    head.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// A one-file HTTP server on 127.0.0.1 that counts the requests it served.
pub struct FileServer {
    pub port: u16,
    pub hits: Arc<AtomicUsize>,
}

impl FileServer {
    /// Serves `body` at every path.
    pub fn start(body: Vec<u8>) -> FileServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/wasm\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(&body);
            }
        });
        FileServer { port, hits }
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// A small valid proxy-wasm-looking module; `tag` makes distinct modules.
pub fn module(tag: &str) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module
             (memory (export "memory") 1)
             (data (i32.const 0) "{tag}")
             (func (export "proxy_abi_version_0_2_1"))
             (func (export "proxy_on_context_create") (param i32 i32)))"#
    ))
    .unwrap()
}

/// Writes a docker `config.json` with an `auth` entry for `host`.
pub fn write_docker_config(dir: &Path, host: &str, user: &str, password: &str) -> PathBuf {
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let path = dir.join("config.json");
    std::fs::write(
        &path,
        format!(r#"{{"auths": {{"{host}": {{"auth": "{auth}"}}}}}}"#),
    )
    .unwrap();
    path
}
