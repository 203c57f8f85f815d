//! A small h2c gRPC server on 127.0.0.1 for tests (and `examples/grpc_upstream.rs`): service
//! `probe.Echo`, methods chosen by name, messages as raw bytes.
//!
//! | method | answer |
//! |---|---|
//! | `Unary` | reads every request message, answers `echo:<message>` for each, `grpc-status: 0` |
//! | `Fail` | trailers-only: `grpc-status: 5`, `grpc-message: no such thing` |
//! | `Slow` | waits 3 s, then answers as `Unary` |
//! | `Bidi` | initial metadata `x-server: bidi`, `echo:<message>` per request message as it comes, then trailers `grpc-status: 0`, `x-trailer: done` when the request ends |
//! | `Ticker` | a `tick` message every 50 ms until the client goes away |
//! | anything else | trailers-only `grpc-status: 12` (UNIMPLEMENTED) |
#![allow(dead_code, clippy::unwrap_used)]

use bytes::{Buf, Bytes, BytesMut};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

/// One request the server received: path and headers (pseudo-headers as `:authority`).
#[derive(Clone, Debug)]
pub struct Seen {
    pub path: String,
    pub headers: Vec<(String, String)>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A running server; stopped when dropped.
pub struct GrpcServer {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for GrpcServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A response body: nothing (the headers end the stream), or frames from a channel.
pub enum TestBody {
    Empty,
    Frames(tokio::sync::mpsc::UnboundedReceiver<Frame<Bytes>>),
}

impl Body for TestBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            TestBody::Empty => Poll::Ready(None),
            TestBody::Frames(frames) => frames.poll_recv(cx).map(|f| f.map(Ok)),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, TestBody::Empty)
    }
}

pub fn frame(message: &[u8]) -> Bytes {
    let mut out = vec![0];
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    Bytes::from(out)
}

/// Splits length-prefixed messages out of request data.
#[derive(Default)]
struct Deframer(BytesMut);

impl Deframer {
    fn push(&mut self, data: &[u8]) -> Vec<Vec<u8>> {
        self.0.extend_from_slice(data);
        let mut out = Vec::new();
        while self.0.len() >= 5 {
            let len = u32::from_be_bytes([self.0[1], self.0[2], self.0[3], self.0[4]]) as usize;
            if self.0.len() < 5 + len {
                break;
            }
            self.0.advance(5);
            out.push(self.0.split_to(len).to_vec());
        }
        out
    }
}

fn trailers(pairs: &[(&'static str, &str)]) -> Frame<Bytes> {
    let mut map = http::HeaderMap::new();
    for (k, v) in pairs {
        map.append(*k, v.parse().unwrap());
    }
    Frame::trailers(map)
}

fn response(body: TestBody, headers: &[(&'static str, &str)]) -> http::Response<TestBody> {
    let mut builder = http::Response::builder()
        .status(200)
        .header("content-type", "application/grpc");
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    builder.body(body).unwrap()
}

fn echo(frames: &UnboundedSender<Frame<Bytes>>, message: &[u8]) -> bool {
    let reply = [b"echo:", message].concat();
    frames.send(Frame::data(frame(&reply))).is_ok()
}

async fn handle(
    request: http::Request<Incoming>,
    seen: Arc<Mutex<Vec<Seen>>>,
) -> Result<http::Response<TestBody>, Infallible> {
    let path = request.uri().path().to_string();
    let mut headers = vec![(
        ":authority".to_string(),
        request
            .uri()
            .authority()
            .map(|a| a.to_string())
            .unwrap_or_default(),
    )];
    for (k, v) in request.headers() {
        headers.push((
            k.to_string(),
            String::from_utf8_lossy(v.as_bytes()).into_owned(),
        ));
    }
    seen.lock().unwrap().push(Seen {
        path: path.clone(),
        headers,
    });
    let mut body = request.into_body();
    let (tx, rx) = unbounded_channel();
    match path.rsplit('/').next().unwrap_or("") {
        method @ ("Unary" | "Slow") => {
            if method == "Slow" {
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
            let mut deframer = Deframer::default();
            while let Some(Ok(frame)) = body.frame().await {
                if let Ok(data) = frame.into_data() {
                    for message in deframer.push(&data) {
                        echo(&tx, &message);
                    }
                }
            }
            let _ = tx.send(trailers(&[("grpc-status", "0")]));
            drop(tx);
            Ok(response(TestBody::Frames(rx), &[("x-server", "unary")]))
        }
        "Fail" => Ok(response(
            TestBody::Empty,
            &[("grpc-status", "5"), ("grpc-message", "no such thing")],
        )),
        "Bidi" => {
            tokio::spawn(async move {
                let mut deframer = Deframer::default();
                while let Some(Ok(frame)) = body.frame().await {
                    if let Ok(data) = frame.into_data() {
                        for message in deframer.push(&data) {
                            echo(&tx, &message);
                        }
                    }
                }
                let _ = tx.send(trailers(&[("grpc-status", "0"), ("x-trailer", "done")]));
            });
            Ok(response(TestBody::Frames(rx), &[("x-server", "bidi")]))
        }
        "Ticker" => {
            tokio::spawn(async move {
                let _body = body;
                loop {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    if tx.send(Frame::data(frame(b"tick"))).is_err() {
                        return;
                    }
                }
            });
            Ok(response(TestBody::Frames(rx), &[]))
        }
        _ => Ok(response(TestBody::Empty, &[("grpc-status", "12")])),
    }
}

/// Starts the server on 127.0.0.1 with an ephemeral port (or `port`).
pub fn start_on(port: u16) -> GrpcServer {
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (stop, mut stopped) = tokio::sync::oneshot::channel();
    let seen_by_server = seen.clone();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let (stream, _) = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok(accepted) => accepted,
                        Err(_) => continue,
                    },
                    _ = &mut stopped => return,
                };
                let seen = seen_by_server.clone();
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |request| handle(request, seen.clone()));
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    });
    GrpcServer {
        addr,
        seen,
        stop: Some(stop),
        thread: Some(thread),
    }
}

pub fn start() -> GrpcServer {
    start_on(0)
}
