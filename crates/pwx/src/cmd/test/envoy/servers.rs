//! The local servers behind Envoy during `pwx test --envoy`: the upstream and one server per
//! callout cluster, each on 127.0.0.1 with an ephemeral port. Each answers as the running case
//! says and records every request it got, so the case can be checked against them.

use super::http1::{self, Message};
use pwx_testkit::Response;
use std::io::BufReader;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

/// What a server does with a request.
#[derive(Clone, Debug)]
pub(crate) enum Answer {
    /// 200 with the request's body and content-type (as pwx-testkit's echo upstream).
    Echo,
    /// A fixed response.
    Respond(Response),
    /// Closes the connection without answering (a transport failure).
    Fail,
    /// The running case gave no answer for this request: 500 with this text, so the case's
    /// result shows why.
    Missing(String),
}

/// A request a server received.
#[derive(Clone, Debug)]
pub(crate) struct Received {
    /// Arrival order across all servers.
    pub seq: u64,
    pub method: String,
    pub path: String,
    pub message: Message,
}

#[derive(Default)]
struct Shared {
    /// `(path, answer)`: the first whose path is `None` or equal to the request's path wins.
    answers: Vec<(Option<String>, Answer)>,
    received: Vec<Received>,
}

/// One server. Dropping it stops accepting (open connections end when Envoy closes them).
pub(crate) struct LocalServer {
    pub port: u16,
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    // A panic in a connection thread cannot leave `Shared` half-updated: recover the data.
    shared.lock().unwrap_or_else(|poison| poison.into_inner())
}

impl LocalServer {
    /// Binds 127.0.0.1:0 and starts accepting; `seq` numbers requests across servers.
    pub(crate) fn start(seq: Arc<AtomicU64>) -> anyhow::Result<LocalServer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let shared = shared.clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name(format!("pwx-test-server-{port}"))
                .spawn(move || {
                    for stream in listener.incoming() {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let Ok(stream) = stream else { continue };
                        let shared = shared.clone();
                        let seq = seq.clone();
                        let _ = std::thread::Builder::new()
                            .name("pwx-test-conn".into())
                            .spawn(move || serve(stream, &shared, &seq));
                    }
                })?
        };
        Ok(LocalServer {
            port,
            shared,
            stop,
            acceptor: Some(acceptor),
        })
    }

    /// Sets the answers for the next requests and forgets what was received.
    pub(crate) fn reset(&self, answers: Vec<(Option<String>, Answer)>) {
        let mut shared = lock(&self.shared);
        shared.answers = answers;
        shared.received.clear();
    }

    /// Forgets what was received (between the repeats of a case).
    pub(crate) fn clear_received(&self) {
        lock(&self.shared).received.clear();
    }

    /// What was received since the last reset or clear.
    pub(crate) fn received(&self) -> Vec<Received> {
        lock(&self.shared).received.clone()
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the thread sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// One connection: requests in, answers out, until Envoy closes it or an answer is `Fail`.
fn serve(stream: TcpStream, shared: &Mutex<Shared>, seq: &AtomicU64) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    while let Ok(Some(request)) = http1::read_message(&mut reader, false, false) {
        let mut parts = request.start.split(' ');
        let method = parts.next().unwrap_or_default().to_string();
        let path = parts.next().unwrap_or_default().to_string();
        let answer = {
            let mut shared = lock(shared);
            shared.received.push(Received {
                seq: seq.fetch_add(1, Ordering::SeqCst),
                method: method.clone(),
                path: path.clone(),
                message: request.clone(),
            });
            shared
                .answers
                .iter()
                .find(|(p, _)| p.as_deref().is_none_or(|p| p == path))
                .map(|(_, a)| a.clone())
                .unwrap_or_else(|| {
                    Answer::Missing(format!(
                        "pwx test: the case has no answer for {method} {path}"
                    ))
                })
        };
        let response = match answer {
            Answer::Fail => return,
            Answer::Echo => {
                let mut r = Response::new(200).body(request.body.clone());
                if let Some(kind) = request.header("content-type") {
                    r = r.header("content-type", kind);
                }
                r
            }
            Answer::Respond(r) => r,
            Answer::Missing(text) => Response::new(500).body(text),
        };
        let mut headers = response.headers.clone();
        if response.body.is_empty()
            && !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        {
            headers.push(("content-length".into(), "0".into()));
        }
        let start = format!("HTTP/1.1 {} pwx", response.status);
        let head_only = method == "HEAD";
        let body: &[u8] = if head_only { &[] } else { &response.body };
        if http1::write_message(&mut writer, &start, &headers, body, &[]).is_err() {
            return;
        }
    }
}
