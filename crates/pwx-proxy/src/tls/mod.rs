//! TLS on both sides of the proxy, on rustls with the ring provider: listeners that terminate
//! TLS (certificates picked by SNI, ALPN choosing HTTP/2 or HTTP/1.1) and clusters that
//! originate it (a CA bundle or the system roots, SNI, ALPN per cluster protocol).
//!
//! Everything is checked when the configuration is built ([`ServerTls::new`],
//! [`ClientTls::new`]), so a bad certificate, key or option stops start-up with a message
//! naming it; at run time a failed handshake only closes that connection.

mod accept;
mod client;
mod pem;
mod server;

pub(crate) use accept::{DownstreamTls, handshake, scheme, stream_info};
pub use client::{ClientTls, ClientTlsOptions, Trust};
pub(crate) use client::{HandshakeFailed, UpstreamConnector};
pub use pem::{CertificatePem, Pem};
pub use server::{ServerTls, ServerTlsOptions, TlsVersion, supported_cipher_suites};

use std::path::PathBuf;

/// Why a TLS configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate, key or CA file could not be read.
    #[error("cannot read {}: {source}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// PEM data holds nothing usable.
    #[error("{origin}: {message}")]
    Pem {
        /// The file (or `inline …`) the PEM came from.
        origin: String,
        /// What is wrong with it.
        message: String,
    },
    /// A cipher suite name rustls does not implement.
    #[error("unknown cipher suite `{name}`; pwx (rustls) accepts: {}", supported_cipher_suites().join(", "))]
    UnknownCipherSuite {
        /// The name as configured.
        name: String,
    },
    /// The TLS versions or options cannot be combined.
    #[error("{0}")]
    Options(String),
    /// No system root certificate could be loaded (and no CA file was given).
    #[error(
        "no system root certificates could be loaded ({0}); give a CA file (`--upstream-ca`, `tls.ca_file` or `validation_context.trusted_ca`)"
    )]
    SystemRoots(String),
}
