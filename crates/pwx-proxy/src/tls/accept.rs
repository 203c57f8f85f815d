//! The downstream handshake (under a timeout; a failure closes only that connection) and the
//! connection facts it yields: `:scheme`, `x-forwarded-proto` and the `connection.*`
//! properties.

use super::ServerTls;
use pwx_host::StreamInfo;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// How long a client may take to complete the handshake.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a TLS connection's handshake settled, carried to each of its requests (as a request
/// extension).
#[derive(Clone, Debug)]
pub(crate) struct DownstreamTls {
    /// `TLSv1.2` or `TLSv1.3`, as Envoy names them.
    pub(crate) version: String,
    /// The SNI the client sent.
    pub(crate) server_name: Option<String>,
    /// The protocol ALPN chose.
    pub(crate) alpn: Option<Vec<u8>>,
}

/// Completes the handshake of an accepted connection; `None` (logged at debug with the peer)
/// when it fails or times out.
pub(crate) async fn handshake(
    tls: &ServerTls,
    stream: TcpStream,
    peer: SocketAddr,
) -> Option<(TlsStream<TcpStream>, DownstreamTls)> {
    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.acceptor.accept(stream)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            return None;
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            return None;
        }
    };
    let connection = stream.get_ref().1;
    let version = match connection.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
        _ => "unknown",
    };
    let facts = DownstreamTls {
        version: version.to_string(),
        server_name: connection.server_name().map(str::to_string),
        alpn: connection.alpn_protocol().map(<[u8]>::to_vec),
    };
    Some((stream, facts))
}

/// `https` for requests on a TLS connection, `http` otherwise.
pub(crate) fn scheme(extensions: &http::Extensions) -> &'static [u8] {
    if extensions.get::<DownstreamTls>().is_some() {
        b"https"
    } else {
        b"http"
    }
}

/// The connection facts of TLS that properties expose (`connection.tls_version`,
/// `connection.requested_server_name`; `connection.mtls` stays false: listeners do not ask
/// for client certificates).
pub(crate) fn stream_info(extensions: &http::Extensions) -> StreamInfo {
    let Some(tls) = extensions.get::<DownstreamTls>() else {
        return StreamInfo::default();
    };
    StreamInfo {
        tls_version: Some(tls.version.clone()),
        requested_server_name: tls.server_name.clone(),
        mtls: false,
        ..StreamInfo::default()
    }
}
