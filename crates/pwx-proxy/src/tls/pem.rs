//! PEM data (from a file or inline in a configuration) and its parsing into certificates and
//! keys, with errors that name where the data came from.

use super::TlsError;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;

/// PEM text and where it came from (for messages).
#[derive(Clone)]
pub struct Pem {
    /// The file name, or a description such as `inline certificate_chain`.
    pub origin: String,
    /// The PEM text.
    pub data: Vec<u8>,
}

// Keys are secrets: debug output names the origin only.
impl std::fmt::Debug for Pem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pem").field("origin", &self.origin).finish()
    }
}

impl Pem {
    /// Reads a PEM file.
    pub fn file(path: &Path) -> Result<Pem, TlsError> {
        let data = std::fs::read(path).map_err(|source| TlsError::Read {
            file: path.to_path_buf(),
            source,
        })?;
        Ok(Pem {
            origin: path.display().to_string(),
            data,
        })
    }

    /// PEM text given in the configuration itself.
    pub fn inline(origin: impl Into<String>, text: impl Into<Vec<u8>>) -> Pem {
        Pem {
            origin: origin.into(),
            data: text.into(),
        }
    }

    fn error(&self, message: impl Into<String>) -> TlsError {
        TlsError::Pem {
            origin: self.origin.clone(),
            message: message.into(),
        }
    }

    /// Every certificate in the data, in order; at least one.
    pub(crate) fn certificates(&self) -> Result<Vec<CertificateDer<'static>>, TlsError> {
        let certificates = CertificateDer::pem_slice_iter(&self.data)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.error(format!("not valid PEM: {e}")))?;
        if certificates.is_empty() {
            return Err(self.error("no certificate found (expected `-----BEGIN CERTIFICATE-----`)"));
        }
        Ok(certificates)
    }

    /// The first private key in the data (PKCS#8, PKCS#1 or SEC1).
    pub(crate) fn private_key(&self) -> Result<PrivateKeyDer<'static>, TlsError> {
        PrivateKeyDer::from_pem_slice(&self.data).map_err(|e| match e {
            rustls_pki_types::pem::Error::NoItemsFound => self.error(
                "no private key found (expected `-----BEGIN PRIVATE KEY-----`, `RSA PRIVATE KEY` or `EC PRIVATE KEY`)",
            ),
            other => self.error(format!("not a valid PEM private key: {other}")),
        })
    }
}

/// A certificate chain (leaf first) and its private key.
#[derive(Clone, Debug)]
pub struct CertificatePem {
    /// The chain, leaf first.
    pub chain: Pem,
    /// The leaf's private key.
    pub key: Pem,
}
