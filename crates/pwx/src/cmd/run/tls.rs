//! TLS from a configuration file (pwx-config's model) to the data plane's checked TLS
//! configurations: certificates and keys are read here, and every error (a missing file, a
//! key that does not match, an unknown cipher suite) points at its place in the file.

use super::file::refuse;
use pwx_config::{DataSource, DownstreamTls, Loaded, TlsVersion, UpstreamTls, UpstreamValidation};
use pwx_proxy::tls::{
    CertificatePem, ClientTls, ClientTlsOptions, Pem, ServerTls, ServerTlsOptions,
    TlsVersion as ProxyTlsVersion, Trust,
};

/// The PEM data of a data source (`model`: its model path, for messages).
fn pem(loaded: &Loaded, model: &str, source: &DataSource) -> anyhow::Result<Pem> {
    match source {
        DataSource::File(path) => Pem::file(path).map_err(|e| refuse(loaded, model, e.to_string())),
        DataSource::Inline(text) => Ok(Pem::inline(
            format!(
                "the inline_string at {}",
                loaded.sources.origin(model).location
            ),
            text.as_bytes(),
        )),
    }
}

fn certificate(
    loaded: &Loaded,
    model: &str,
    certificate: &pwx_config::TlsCertificate,
) -> anyhow::Result<CertificatePem> {
    Ok(CertificatePem {
        chain: pem(
            loaded,
            &format!("{model}.certificate_chain"),
            &certificate.certificate_chain,
        )?,
        key: pem(
            loaded,
            &format!("{model}.private_key"),
            &certificate.private_key,
        )?,
    })
}

/// rustls speaks TLS 1.2 and 1.3 only.
fn version(
    loaded: &Loaded,
    model: &str,
    version: Option<TlsVersion>,
) -> anyhow::Result<Option<ProxyTlsVersion>> {
    match version {
        None => Ok(None),
        Some(TlsVersion::V1_2) => Ok(Some(ProxyTlsVersion::Tls12)),
        Some(TlsVersion::V1_3) => Ok(Some(ProxyTlsVersion::Tls13)),
        Some(old) => Err(refuse(
            loaded,
            model,
            format!(
                "{} is not supported: pwx (rustls) speaks TLS 1.2 and 1.3 only; use TLSv1_2 or TLSv1_3",
                old.envoy_name()
            ),
        )),
    }
}

/// A listener's TLS (`at`: `listeners[i]`).
pub(super) fn listener(
    loaded: &Loaded,
    at: &str,
    tls: &DownstreamTls,
) -> anyhow::Result<ServerTls> {
    let certificates = tls
        .certificates
        .iter()
        .enumerate()
        .map(|(i, c)| certificate(loaded, &format!("{at}.tls.certificates[{i}]"), c))
        .collect::<anyhow::Result<_>>()?;
    let params = format!("{at}.tls.tls_params");
    let options = ServerTlsOptions {
        certificates,
        alpn: tls.alpn.clone(),
        min_version: version(loaded, &params, tls.min_version)?,
        max_version: version(loaded, &params, tls.max_version)?,
        cipher_suites: tls.cipher_suites.clone(),
    };
    ServerTls::new(&options).map_err(|e| {
        let at = match e {
            pwx_proxy::tls::TlsError::UnknownCipherSuite { .. }
            | pwx_proxy::tls::TlsError::Options(_) => params,
            _ => format!("{at}.tls"),
        };
        refuse(loaded, &at, e.to_string())
    })
}

/// A cluster's TLS (`at`: `clusters[c]`).
pub(super) fn cluster(loaded: &Loaded, at: &str, tls: &UpstreamTls) -> anyhow::Result<ClientTls> {
    let trust = match &tls.validation {
        UpstreamValidation::TrustedCa(source) => {
            Trust::Ca(pem(loaded, &format!("{at}.tls.trusted_ca"), source)?)
        }
        UpstreamValidation::SystemRoots => Trust::SystemRoots,
        UpstreamValidation::None => Trust::AnyCertificate,
    };
    let client_certificate = tls
        .client_certificate
        .as_ref()
        .map(|c| certificate(loaded, &format!("{at}.tls.client_certificate"), c))
        .transpose()?;
    let options = ClientTlsOptions {
        trust,
        verify_name: tls.verify_server_name,
        sni: tls.sni.clone(),
        send_sni: tls.sni.is_some() || tls.sni_from_endpoint,
        alpn: tls.alpn.clone(),
        client_certificate,
    };
    ClientTls::new(&options).map_err(|e| refuse(loaded, &format!("{at}.tls"), e.to_string()))
}
