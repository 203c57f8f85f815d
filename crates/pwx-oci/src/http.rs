//! TLS set-up (rustls with the ring provider) and the small HTTPS download used for module URLs.

use std::net::IpAddr;
use std::time::Duration;

use crate::error::{Error, Result, chain};

/// Default timeout for one module download or registry request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Installs rustls' `ring` crypto provider as the process default, unless one is installed.
///
/// reqwest (used by the OCI client and for downloads) is built without a provider of its own, so
/// this must run before any HTTP client is created; every constructor in this crate calls it.
pub fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race with another thread installing a provider is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// True for `localhost` and loopback addresses (`127.0.0.0/8`, `::1`), with or without brackets.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Downloads `url` into memory (at most `max_size` bytes), following redirects.
pub(crate) async fn download(
    url: &reqwest::Url,
    timeout: Duration,
    max_size: u64,
) -> Result<Vec<u8>> {
    ensure_crypto_provider();
    let failed = |reason: String| Error::Download {
        url: url.to_string(),
        reason,
    };
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .user_agent(concat!("pwx/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| failed(chain(&e)))?;
    let mut response = client
        .get(url.clone())
        .send()
        .await
        .map_err(|e| failed(chain(&e)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(failed(format!("the server answered HTTP {status}")));
    }
    let too_big = || failed(format!("the response is larger than {max_size} bytes"));
    if response.content_length().is_some_and(|n| n > max_size) {
        return Err(too_big());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| failed(chain(&e)))? {
        if (body.len() + chunk.len()) as u64 > max_size {
            return Err(too_big());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "[::1]",
            "LocalHost",
        ] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in ["10.0.0.1", "example.test", "169.254.1.1", "0.0.0.0"] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }
}
