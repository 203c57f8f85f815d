//! bench-upstream: the origin behind the proxies in `bench/run.py`. It answers every HTTP/1.1
//! request with the same small 200 so that it is never the bottleneck of a measurement: no
//! routing, no logging, keep-alive, one current-thread runtime per thread.

use anyhow::Context;
use bytes::Bytes;
use clap::Parser;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;

/// Command line of bench-upstream.
#[derive(Parser)]
#[command(about = "Answers every HTTP/1.1 request with a fixed 200 (origin for bench/run.py)")]
struct Args {
    /// Address to listen on; port 0 picks a free port. The bound address is printed to stdout
    /// as `listening on HOST:PORT` once the socket accepts.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Threads accepting and serving connections, each with its own runtime.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: u16,
    /// Size of the response body in bytes.
    #[arg(long, default_value_t = 64)]
    body_bytes: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let listener = std::net::TcpListener::bind(args.listen)
        .with_context(|| format!("binding {}", args.listen))?;
    listener
        .set_nonblocking(true)
        .context("making the listener non-blocking")?;
    let local = listener.local_addr().context("reading the bound address")?;
    // A readable body of the requested size, so a human looking at a response sees what it is.
    let body: Bytes = "bench-upstream\n"
        .bytes()
        .cycle()
        .take(args.body_bytes)
        .collect::<Vec<u8>>()
        .into();

    let mut threads = Vec::new();
    for index in 0..args.threads {
        let listener = listener
            .try_clone()
            .context("sharing the listener with a thread")?;
        let body = body.clone();
        let thread = std::thread::Builder::new()
            .name(format!("upstream-{index}"))
            .spawn(move || serve(listener, body))
            .context("starting a server thread")?;
        threads.push(thread);
    }
    println!("listening on {local}");
    std::io::stdout().flush().context("writing to stdout")?;

    for thread in threads {
        match thread.join() {
            Ok(result) => result?,
            Err(_) => anyhow::bail!("a server thread panicked"),
        }
    }
    Ok(())
}

/// Accepts connections forever on one thread and serves each with hyper's HTTP/1.1 server.
fn serve(listener: std::net::TcpListener, body: Bytes) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .context("starting a runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)
            .context("registering the listener with the runtime")?;
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                // Running out of file descriptors or a connection reset before accept: the
                // next accept may well succeed, and the load generator will report failures.
                Err(error) => {
                    eprintln!("bench-upstream: accept failed: {error}");
                    continue;
                }
            };
            // Small responses on keep-alive connections: Nagle would only add latency.
            let _ = stream.set_nodelay(true);
            let body = body.clone();
            tokio::spawn(async move {
                let service = service_fn(move |_request: Request<Incoming>| {
                    let body = body.clone();
                    async move {
                        let mut response = Response::new(Full::new(body));
                        response.headers_mut().insert(
                            hyper::header::CONTENT_TYPE,
                            hyper::header::HeaderValue::from_static("text/plain"),
                        );
                        Ok::<_, Infallible>(response)
                    }
                });
                // A client closing mid-request is normal under load; nothing to report.
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}
