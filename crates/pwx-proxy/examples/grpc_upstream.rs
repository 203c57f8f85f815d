//! The h2c gRPC server of the gRPC callout tests, on its own: `cargo run -p pwx-proxy --example
//! grpc_upstream [port]` serves `probe.Echo` on 127.0.0.1 (methods in
//! `tests/support/grpc_server.rs`) until interrupted: an upstream to try `proxy_grpc_call` and
//! `proxy_grpc_stream` against, with pwx or with Envoy. Each request is printed as it arrives.
#![allow(clippy::unwrap_used)]

#[path = "../tests/support/grpc_server.rs"]
mod grpc_server;

fn main() {
    let port = std::env::args()
        .nth(1)
        .map(|p| p.parse().expect("usage: grpc_upstream [port]"))
        .unwrap_or(0);
    let server = grpc_server::start_on(port);
    println!("probe.Echo on {}", server.addr);
    // Print each request as it arrives (path and headers), to see what a proxy sends.
    let mut printed = 0;
    loop {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let seen = server.seen.lock().unwrap();
        for request in &seen[printed..] {
            println!("{} {:?}", request.path, request.headers);
        }
        printed = seen.len();
    }
}
