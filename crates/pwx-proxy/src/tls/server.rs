//! The listener side: a rustls `ServerConfig` from certificate chains and keys, TLS versions,
//! cipher suites (Envoy's OpenSSL-style names) and ALPN.

use super::{CertificatePem, TlsError};
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{CipherSuite, SupportedCipherSuite};
use rustls_pki_types::{CertificateDer, ServerName};
use std::sync::Arc;

/// A TLS protocol version pwx can speak (rustls implements 1.2 and 1.3 only).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    /// TLS 1.2.
    Tls12,
    /// TLS 1.3.
    Tls13,
}

/// What a TLS listener is built from.
#[derive(Clone, Debug, Default)]
pub struct ServerTlsOptions {
    /// Certificates with their keys. With several, the first whose names match the client's
    /// SNI is used, else the first one (as Envoy does).
    pub certificates: Vec<CertificatePem>,
    /// ALPN protocols offered, in preference order (empty: no ALPN, the connection then
    /// detects HTTP/2 by its preface).
    pub alpn: Vec<String>,
    /// Lowest version accepted (default TLS 1.2).
    pub min_version: Option<TlsVersion>,
    /// Highest version accepted (default TLS 1.3).
    pub max_version: Option<TlsVersion>,
    /// TLS 1.2 cipher suites by name, in preference order (empty: rustls's defaults). TLS 1.3
    /// suites are always enabled, as in Envoy, whose `cipher_suites` only affect TLS ≤ 1.2.
    pub cipher_suites: Vec<String>,
}

/// A listener's TLS configuration, checked and ready for handshakes.
#[derive(Clone)]
pub struct ServerTls {
    pub(crate) acceptor: tokio_rustls::TlsAcceptor,
    origins: Vec<String>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("certificates", &self.origins)
            .finish()
    }
}

/// Envoy's (BoringSSL's) names for the TLS 1.2 suites rustls implements, and the IANA names.
const CIPHER_SUITES: &[(&str, CipherSuite)] = &[
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-RSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-RSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "ECDHE-RSA-CHACHA20-POLY1305",
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
];

/// The cipher suite names pwx accepts (for messages and docs).
pub fn supported_cipher_suites() -> Vec<&'static str> {
    CIPHER_SUITES.iter().map(|(name, _)| *name).collect()
}

/// The suite called `name`: an Envoy/OpenSSL name or the IANA name (`TLS_ECDHE_…`).
fn cipher_suite(name: &str) -> Option<CipherSuite> {
    CIPHER_SUITES
        .iter()
        .find(|(openssl, suite)| *openssl == name || format!("{suite:?}") == name)
        .map(|(_, suite)| *suite)
}

/// The ring provider, limited to the configured TLS 1.2 suites (plus every TLS 1.3 suite).
pub(super) fn provider(cipher_suites: &[String]) -> Result<CryptoProvider, TlsError> {
    let mut provider = rustls::crypto::ring::default_provider();
    if cipher_suites.is_empty() {
        return Ok(provider);
    }
    let mut chosen: Vec<CipherSuite> = Vec::new();
    for entry in cipher_suites {
        // BoringSSL's equal-preference groups, `[A|B]`, as Envoy's default list uses them.
        let group = entry.trim().trim_start_matches('[').trim_end_matches(']');
        for name in group.split('|').map(str::trim) {
            let suite = cipher_suite(name).ok_or_else(|| TlsError::UnknownCipherSuite {
                name: name.to_string(),
            })?;
            if !chosen.contains(&suite) {
                chosen.push(suite);
            }
        }
    }
    let available = provider.cipher_suites.clone();
    let tls13 = available
        .iter()
        .filter(|s| matches!(s, SupportedCipherSuite::Tls13(_)));
    let tls12 = chosen
        .iter()
        .filter_map(|wanted| available.iter().find(|s| s.suite() == *wanted));
    provider.cipher_suites = tls13.chain(tls12).copied().collect();
    Ok(provider)
}

/// The rustls versions between `min` and `max` (defaults 1.2 and 1.3).
pub(super) fn versions(
    min: Option<TlsVersion>,
    max: Option<TlsVersion>,
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, TlsError> {
    let min = min.unwrap_or(TlsVersion::Tls12);
    let max = max.unwrap_or(TlsVersion::Tls13);
    if min > max {
        return Err(TlsError::Options(format!(
            "the minimum TLS version ({min:?}) is above the maximum ({max:?})"
        )));
    }
    let mut versions = Vec::new();
    if min == TlsVersion::Tls12 {
        versions.push(&rustls::version::TLS12);
    }
    if max == TlsVersion::Tls13 {
        versions.push(&rustls::version::TLS13);
    }
    Ok(versions)
}

/// Loads a chain and its key, and checks that they belong together.
pub(super) fn certified_key(
    provider: &CryptoProvider,
    pem: &CertificatePem,
) -> Result<CertifiedKey, TlsError> {
    let chain = pem.chain.certificates()?;
    let key = pem.key.private_key()?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError::Pem {
            origin: pem.key.origin.clone(),
            message: format!("unusable private key: {e}"),
        })?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| {
        TlsError::Options(format!(
            "the private key in {} does not belong to the certificate in {} ({e})",
            pem.key.origin, pem.chain.origin
        ))
    })?;
    Ok(certified)
}

impl ServerTls {
    /// Loads and checks everything; errors name the file or option at fault.
    pub fn new(options: &ServerTlsOptions) -> Result<ServerTls, TlsError> {
        if options.certificates.is_empty() {
            return Err(TlsError::Options(
                "a TLS listener needs at least one certificate and key".into(),
            ));
        }
        let provider = provider(&options.cipher_suites)?;
        let certificates = options
            .certificates
            .iter()
            .map(|pem| certified_key(&provider, pem).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        let versions = versions(options.min_version, options.max_version)?;
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(&versions)
            .map_err(|e| TlsError::Options(format!("TLS versions and cipher suites: {e}")))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(CertificatesBySni { certificates }));
        config.alpn_protocols = options.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        Ok(ServerTls {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            origins: options
                .certificates
                .iter()
                .map(|c| c.chain.origin.clone())
                .collect(),
        })
    }
}

/// Picks the certificate whose names (SAN, wildcards included) match the SNI; the first one
/// when none does or the client sent no SNI.
#[derive(Debug)]
struct CertificatesBySni {
    certificates: Vec<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for CertificatesBySni {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let matching = hello.server_name().and_then(|sni| {
            let name = ServerName::try_from(sni).ok()?;
            self.certificates
                .iter()
                .find(|c| c.end_entity_cert().is_ok_and(|leaf| valid_for(leaf, &name)))
        });
        matching.or_else(|| self.certificates.first()).cloned()
    }
}

fn valid_for(leaf: &CertificateDer<'_>, name: &ServerName<'_>) -> bool {
    webpki::EndEntityCert::try_from(leaf)
        .is_ok_and(|cert| cert.verify_is_valid_for_subject_name(name).is_ok())
}
