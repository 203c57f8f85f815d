//! The cluster side: a rustls `ClientConfig` (CA bundle, system roots, or Envoy's "no
//! validation context"), SNI, ALPN per cluster protocol, and the connector the pooled clients
//! use (TCP, then TLS when the cluster has it).

use super::server::{certified_key, provider, versions};
use super::{CertificatePem, Pem, TlsError};
use crate::config::UpstreamProtocol;
use hyper_rustls::MaybeHttpsStream;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// Which certificates an upstream's chain is checked against.
#[derive(Clone, Debug)]
pub enum Trust {
    /// The CAs in this PEM bundle.
    Ca(Pem),
    /// The operating system's roots.
    SystemRoots,
    /// Nothing is checked: Envoy's behaviour when an `UpstreamTlsContext` has no
    /// `trusted_ca`.
    AnyCertificate,
}

/// What a TLS cluster is built from.
#[derive(Clone, Debug)]
pub struct ClientTlsOptions {
    /// Which CAs are trusted.
    pub trust: Trust,
    /// Also check that the certificate is valid for the server name (Envoy checks the chain
    /// only unless SAN matchers are configured; pwx's own front ends check the name).
    pub verify_name: bool,
    /// Server name to send and verify; `None`: the endpoint's host.
    pub sni: Option<String>,
    /// Send the SNI extension (Envoy sends none unless `sni` is configured).
    pub send_sni: bool,
    /// ALPN protocols to offer (empty: `h2` for HTTP/2 clusters, `http/1.1` otherwise).
    pub alpn: Vec<String>,
    /// A client certificate, for mutual TLS.
    pub client_certificate: Option<CertificatePem>,
}

impl ClientTlsOptions {
    /// Verify against `trust`, name included, SNI from the endpoint host, default ALPN.
    pub fn new(trust: Trust) -> Self {
        ClientTlsOptions {
            trust,
            verify_name: true,
            sni: None,
            send_sni: true,
            alpn: Vec::new(),
            client_certificate: None,
        }
    }
}

/// A cluster's TLS configuration, checked and ready for connections.
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<rustls::ClientConfig>,
    sni: Option<ServerName<'static>>,
    alpn: Vec<String>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("sni", &self.sni)
            .field("alpn", &self.alpn)
            .finish()
    }
}

impl ClientTls {
    /// Loads and checks everything; errors name the file at fault.
    pub fn new(options: &ClientTlsOptions) -> Result<ClientTls, TlsError> {
        let provider = Arc::new(provider(&[])?);
        let verifier: Arc<dyn ServerCertVerifier> = match &options.trust {
            Trust::AnyCertificate => Arc::new(AnyCertificate(provider.clone())),
            Trust::Ca(pem) => {
                let mut roots = RootCertStore::empty();
                for certificate in pem.certificates()? {
                    roots.add(certificate).map_err(|e| TlsError::Pem {
                        origin: pem.origin.clone(),
                        message: format!("not a usable CA certificate: {e}"),
                    })?;
                }
                webpki_verifier(roots, &provider, options.verify_name)?
            }
            Trust::SystemRoots => webpki_verifier(system_roots()?, &provider, options.verify_name)?,
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions(None, None)?)
            .map_err(|e| TlsError::Options(format!("TLS versions: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut config = match &options.client_certificate {
            Some(pem) => {
                let certified = Arc::new(certified_key(&provider, pem)?);
                builder.with_client_cert_resolver(Arc::new(ClientCertificate(certified)))
            }
            None => builder.with_no_client_auth(),
        };
        config.enable_sni = options.send_sni;
        let sni = options
            .sni
            .as_deref()
            .map(|name| {
                ServerName::try_from(name.to_string())
                    .map_err(|e| TlsError::Options(format!("SNI {name:?}: {e}")))
            })
            .transpose()?;
        Ok(ClientTls {
            config: Arc::new(config),
            sni,
            alpn: options.alpn.clone(),
        })
    }

    /// The configuration for a cluster speaking `protocol` (its ALPN list).
    fn for_protocol(&self, protocol: UpstreamProtocol) -> tokio_rustls::TlsConnector {
        let mut config = (*self.config).clone();
        config.alpn_protocols = if self.alpn.is_empty() {
            match protocol {
                UpstreamProtocol::Http2 => vec![b"h2".to_vec()],
                UpstreamProtocol::Http1 => vec![b"http/1.1".to_vec()],
            }
        } else {
            self.alpn.iter().map(|p| p.as_bytes().to_vec()).collect()
        };
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }
}

fn webpki_verifier(
    roots: RootCertStore,
    provider: &Arc<CryptoProvider>,
    verify_name: bool,
) -> Result<Arc<dyn ServerCertVerifier>, TlsError> {
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| TlsError::Options(format!("certificate verifier: {e}")))?;
    Ok(if verify_name {
        webpki
    } else {
        Arc::new(ChainOnly(webpki))
    })
}

/// The operating system's root certificates (read once per cluster, at start-up).
fn system_roots() -> Result<RootCertStore, TlsError> {
    let loaded = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(loaded.certs);
    if added == 0 {
        let why = loaded
            .errors
            .first()
            .map_or_else(|| "none found".to_string(), ToString::to_string);
        return Err(TlsError::SystemRoots(why));
    }
    Ok(roots)
}

/// Checks the chain and the handshake signatures, but accepts a certificate issued for
/// another name: Envoy's validation without SAN matchers.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// Accepts any certificate (the handshake signatures are still checked): an Envoy
/// `UpstreamTlsContext` without `trusted_ca`.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Always presents the one configured client certificate.
#[derive(Debug)]
struct ClientCertificate(Arc<rustls::sign::CertifiedKey>);

impl ResolvesClientCert for ClientCertificate {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The connector of a cluster's pooled client: TCP, then TLS when the cluster has it (the
/// request URIs of a TLS cluster are `https://`). HTTP/2 is used when ALPN says `h2`.
#[derive(Clone)]
pub(crate) struct UpstreamConnector {
    tcp: HttpConnector,
    tls: Option<(tokio_rustls::TlsConnector, Option<ServerName<'static>>)>,
}

impl UpstreamConnector {
    pub(crate) fn new(
        mut tcp: HttpConnector,
        tls: Option<&ClientTls>,
        protocol: UpstreamProtocol,
    ) -> Self {
        // The TCP connector takes `https://` URIs too; TLS is added on top here.
        tcp.enforce_http(tls.is_none());
        UpstreamConnector {
            tcp,
            tls: tls.map(|tls| (tls.for_protocol(protocol), tls.sni.clone())),
        }
    }

    /// `https` for TLS clusters, `http` otherwise.
    pub(crate) fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The upstream TLS handshake failed (the 503's "transport failure reason").
#[derive(Debug, thiserror::Error)]
#[error("TLS error: {0}")]
pub(crate) struct HandshakeFailed(String);

impl tower_service::Service<http::Uri> for UpstreamConnector {
    type Response = MaybeHttpsStream<TokioIo<tokio::net::TcpStream>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.tcp.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let tls = self.tls.clone();
        let host = uri
            .host()
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let connecting = self.tcp.call(uri);
        Box::pin(async move {
            let tcp = connecting.await?;
            let Some((connector, sni)) = tls else {
                return Ok(MaybeHttpsStream::Http(tcp));
            };
            let name = match sni {
                Some(name) => name,
                None => ServerName::try_from(host)?,
            };
            let stream = connector
                .connect(name, TokioIo::new(tcp))
                .await
                .map_err(|e| HandshakeFailed(e.to_string()))?;
            Ok(MaybeHttpsStream::Https(TokioIo::new(stream)))
        })
    }
}
