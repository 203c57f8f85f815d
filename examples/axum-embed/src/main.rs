//! An axum app behind two proxy-wasm filters (add-header, then token-auth), run by pwx's data
//! plane as a tower layer: `axum-embed [LISTEN]` (default 127.0.0.1:3000).

use anyhow::Context as _;
use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use pwx_abi::FailurePolicy;
use pwx_host::{PluginConfig, VmConfig};
use pwx_proxy::FilterConfig;
use pwx_proxy::layer::{ClientAddr, FilterChain};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Where scripts/build-fixtures.sh put the filters: `$PWX_FIXTURES_DIR`, else
/// `$CARGO_TARGET_DIR/fixtures`, else `target/fixtures` (from the repository root).
fn fixtures_dir() -> PathBuf {
    std::env::var_os("PWX_FIXTURES_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("CARGO_TARGET_DIR").map(|d| PathBuf::from(d).join("fixtures")))
        .unwrap_or_else(|| PathBuf::from("target/fixtures"))
}

/// A filter from its module file, with the example's default configuration and fail-closed.
fn filter(name: &str) -> anyhow::Result<FilterConfig> {
    let path = fixtures_dir().join(format!("{name}.wasm"));
    let wasm = std::fs::read(&path).with_context(|| {
        format!(
            "reading {}: build the example filters first with scripts/build-fixtures.sh rust",
            path.display()
        )
    })?;
    Ok(FilterConfig {
        wasm,
        source: path.display().to_string(),
        plugin: PluginConfig {
            name: name.into(),
            failure_policy: FailurePolicy::FailClosed,
            ..Default::default()
        },
        vm: VmConfig {
            vm_id: name.into(),
            ..Default::default()
        },
    })
}

async fn hello() -> &'static str {
    "hello from axum\n"
}

/// The request headers as the app received them (after the request filters).
async fn headers(headers: HeaderMap) -> String {
    let mut text = String::new();
    for (name, value) in &headers {
        text.push_str(&format!(
            "{name}: {}\n",
            value.to_str().unwrap_or("<binary>")
        ));
    }
    text
}

/// Gives the filters the client's address (`source.address`): the layer cannot know it.
async fn client_addr(
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    request.extensions_mut().insert(ClientAddr {
        remote,
        local: None,
    });
    next.run(request).await
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    // Logs (the filters' included) on stderr; stdout announces the address.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".into());
    let listen: SocketAddr = listen
        .parse()
        .with_context(|| format!("{listen:?} is not an address like 127.0.0.1:3000"))?;

    // Loads both modules, starts each plugin on a canary VM, then two filter workers.
    let filters = FilterChain::builder()
        .filter(filter("add-header")?)
        .filter(filter("token-auth")?)
        .workers(2)
        .build()?;

    let app = Router::new()
        .route("/", get(hello))
        .route("/headers", get(headers))
        .layer(filters.layer())
        .layer(axum::middleware::from_fn(client_addr));

    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    println!("axum-embed: listening on http://{}", listener.local_addr()?);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
