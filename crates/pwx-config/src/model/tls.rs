//! TLS on listeners (Envoy's `DownstreamTlsContext`) and towards clusters
//! (`UpstreamTlsContext`): files and options as configured; the data plane reads and checks
//! the certificates.

use std::path::PathBuf;

/// Where PEM data lives (Envoy's `DataSource`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataSource {
    /// A file (relative paths already resolved against the configuration file).
    File(PathBuf),
    /// The PEM text itself (`inline_string`).
    Inline(String),
}

/// A certificate chain and its private key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsCertificate {
    /// The chain, leaf first (PEM).
    pub certificate_chain: DataSource,
    /// The leaf's private key (PEM).
    pub private_key: DataSource,
}

/// A TLS protocol version, as Envoy's `tls_params` names them (`TLS_AUTO` is "not set").
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    /// `TLSv1_0`.
    V1_0,
    /// `TLSv1_1`.
    V1_1,
    /// `TLSv1_2`.
    V1_2,
    /// `TLSv1_3`.
    V1_3,
}

impl TlsVersion {
    /// Envoy's name.
    pub fn envoy_name(self) -> &'static str {
        match self {
            TlsVersion::V1_0 => "TLSv1_0",
            TlsVersion::V1_1 => "TLSv1_1",
            TlsVersion::V1_2 => "TLSv1_2",
            TlsVersion::V1_3 => "TLSv1_3",
        }
    }
}

/// TLS termination on a listener.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DownstreamTls {
    /// Certificates; with several, the one whose names match the client's SNI is used, else
    /// the first.
    pub certificates: Vec<TlsCertificate>,
    /// ALPN protocols offered, in order (empty: none).
    pub alpn: Vec<String>,
    /// Lowest version accepted (`None`: the default, TLS 1.2).
    pub min_version: Option<TlsVersion>,
    /// Highest version accepted (`None`: the default, TLS 1.3).
    pub max_version: Option<TlsVersion>,
    /// TLS 1.2 cipher suites by name, in order (empty: the defaults).
    pub cipher_suites: Vec<String>,
}

/// Which certificates an upstream's chain is checked against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpstreamValidation {
    /// These CAs (`validation_context.trusted_ca`, pwx's `ca_file`).
    TrustedCa(DataSource),
    /// The system's roots (pwx YAML without `ca_file`).
    SystemRoots,
    /// No check: an Envoy `UpstreamTlsContext` without `trusted_ca`, as Envoy does.
    None,
}

/// TLS to the upstream (Envoy's `envoy.transport_sockets.tls` with an `UpstreamTlsContext`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamTls {
    /// Server name to send (SNI).
    pub sni: Option<String>,
    /// When `sni` is not set, send the endpoint's host name as SNI (pwx YAML); Envoy sends
    /// none.
    pub sni_from_endpoint: bool,
    /// What the chain is checked against.
    pub validation: UpstreamValidation,
    /// Also check that the certificate names the server (pwx YAML). Envoy checks the chain
    /// only, unless SAN matchers are configured (which pwx does not support).
    pub verify_server_name: bool,
    /// ALPN protocols to offer, in order (empty: by the cluster's protocol).
    pub alpn: Vec<String>,
    /// Client certificate chain and key, for mutual TLS.
    pub client_certificate: Option<TlsCertificate>,
}
