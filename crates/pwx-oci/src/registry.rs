//! Push, pull, tag and list tags on an OCI registry, through the `oci-client` crate.

use std::time::Duration;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::{
    IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE, OciImageManifest,
};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use serde::{Deserialize, Serialize};

use crate::auth::Auth;
use crate::error::{Error, Result, chain};
use crate::http::{DEFAULT_TIMEOUT, ensure_crypto_provider, is_loopback_host};
use crate::image::{Image, ImageFormat, classify, module_from_layer, no_plugin_error};

/// How to reach registries.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Credentials; docker's `config.json` by default.
    pub auth: Auth,
    /// Talk plain HTTP instead of HTTPS. Meant for registries on localhost; a warning is logged
    /// when it is used for any other host.
    pub insecure: bool,
    /// Timeout for connecting and for each read.
    pub timeout: Duration,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            auth: Auth::default(),
            insecure: false,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// What a push did. Both digests are always reported: the image digest names the manifest, the
/// module sha256 names the .wasm inside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushResult {
    /// The reference pushed to (`registry/repository:tag`).
    pub reference: String,
    /// The same image pinned by digest (`registry/repository@sha256:…`).
    pub pinned: String,
    /// The image (manifest) digest, `sha256:<hex>`.
    pub image_digest: String,
    /// Hex sha256 of the module inside.
    pub module_sha256: String,
    /// The image shape.
    pub format: ImageFormat,
}

/// What a pull returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullResult {
    /// The reference pulled (`registry/repository:tag` or `…@sha256:…`).
    pub reference: String,
    /// The image pinned by digest (`registry/repository@sha256:…`).
    pub pinned: String,
    /// The image (manifest) digest, `sha256:<hex>`.
    pub image_digest: String,
    /// Hex sha256 of the module.
    pub module_sha256: String,
    /// The image shape found.
    pub format: ImageFormat,
    /// The module bytes.
    pub module: Vec<u8>,
    /// ABI versions: from the artifact config, or from the module's marker exports.
    pub abi_versions: Vec<String>,
    /// Root ids from the artifact config (empty for compat images).
    pub root_ids: Vec<String>,
}

/// What a tag operation did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagResult {
    /// The new reference (`registry/repository:tag`).
    pub reference: String,
    /// The image digest it now points to.
    pub image_digest: String,
}

/// Parses `registry[:port]/repository[:tag|@sha256:…]`. The registry host must be written out
/// (a first component with a `.` or `:`, or `localhost`); a missing tag means `latest`.
pub fn parse_reference(input: &str) -> Result<Reference> {
    let bad = |reason: &str| Error::InvalidReference {
        input: input.to_string(),
        reason: reason.to_string(),
    };
    let input = input.trim();
    let Some((host, rest)) = input.split_once('/') else {
        return Err(bad("no registry host"));
    };
    let explicit_host = host.contains('.') || host.contains(':') || host == "localhost";
    if !explicit_host || rest.is_empty() {
        return Err(bad(
            "the first component must be the registry host (with a `.` or a port, or `localhost`)",
        ));
    }
    Reference::try_from(input).map_err(|e| bad(&e.to_string()))
}

/// A connection to registries with one set of options.
#[derive(Clone)]
pub struct Registry {
    client: Client,
    options: RegistryOptions,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// Creates a client. No network traffic happens until the first operation.
    pub fn new(options: RegistryOptions) -> Result<Registry> {
        ensure_crypto_provider();
        let config = ClientConfig {
            protocol: if options.insecure {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            connect_timeout: Some(options.timeout),
            read_timeout: Some(options.timeout),
            user_agent: concat!("pwx/", env!("CARGO_PKG_VERSION")),
            ..ClientConfig::default()
        };
        let client = Client::try_from(config).map_err(|e| Error::Build {
            reason: format!("creating the registry client: {}", chain(&e)),
        })?;
        Ok(Registry { client, options })
    }

    /// The options this registry client was made with.
    pub fn options(&self) -> &RegistryOptions {
        &self.options
    }

    fn prepare(&self, reference: &Reference) -> Result<RegistryAuth> {
        let host = reference.resolve_registry();
        if self.options.insecure && !is_loopback_host(host.rsplit_once(':').map_or(host, |h| h.0)) {
            tracing::warn!(
                registry = host,
                "using plain HTTP (insecure) for a non-local registry"
            );
        }
        Ok(self.options.auth.resolve(host)?.to_registry_auth())
    }

    fn fail(
        &self,
        operation: &'static str,
        reference: &Reference,
    ) -> impl Fn(OciDistributionError) -> Error + '_ {
        let reference = reference.whole();
        move |source| Error::Registry {
            operation,
            reference: reference.clone(),
            detail: chain(&source),
            hint: hint(&source, self.options.insecure),
            source: Box::new(source),
        }
    }

    /// Pushes `image` to `reference` (`registry/repository:tag`, or `@sha256:…` equal to the
    /// image digest). Blobs the registry already has are not uploaded again.
    pub async fn push(&self, reference: &str, image: &Image) -> Result<PushResult> {
        let reference = parse_reference(reference)?;
        if let Some(d) = reference.digest()
            && d != image.digest()
        {
            return Err(Error::InvalidReference {
                input: reference.whole(),
                reason: format!(
                    "it names digest {d} but the image's digest is {}",
                    image.digest()
                ),
            });
        }
        let auth = self.prepare(&reference)?;
        let fail = self.fail("push to", &reference);
        self.client
            .store_auth_if_needed(reference.resolve_registry(), &auth)
            .await;
        self.client
            .auth(&reference, &auth, RegistryOperation::Push)
            .await
            .map_err(&fail)?;
        let manifest = image.manifest();
        let blobs = manifest
            .layers
            .iter()
            .zip(image.layers().iter().map(Vec::as_slice))
            .chain(std::iter::once((&manifest.config, image.config())));
        for (desc, blob) in blobs {
            let exists = self
                .client
                .blob_exists(&reference, &desc.digest)
                .await
                .unwrap_or(false);
            if !exists {
                self.client
                    .push_blob(&reference, blob.to_vec(), &desc.digest)
                    .await
                    .map_err(&fail)?;
            }
        }
        let content_type = image
            .manifest_media_type()
            .parse()
            .map_err(|_| Error::Build {
                reason: format!(
                    "manifest media type `{}` is not a valid header",
                    image.manifest_media_type()
                ),
            })?;
        self.client
            .push_manifest_raw(&reference, image.manifest_json().to_vec(), content_type)
            .await
            .map_err(&fail)?;
        Ok(PushResult {
            reference: reference.whole(),
            pinned: pinned(&reference, image.digest()),
            image_digest: image.digest().to_string(),
            module_sha256: image.module_sha256().to_string(),
            format: image.format(),
        })
    }

    /// Pulls the module from `reference` (by tag or by digest). Accepts OCI compat, Docker compat
    /// and Wasm artifact images; every blob is checked against its digest.
    pub async fn pull(&self, reference: &str) -> Result<PullResult> {
        let reference = parse_reference(reference)?;
        let auth = self.prepare(&reference)?;
        let fail = self.fail("pull of", &reference);
        let (manifest, image_digest) = self.manifest(&reference, &auth).await?;
        let whole = reference.whole();
        let (format, candidates) = classify(&manifest, &whole)?;
        let mut config = Vec::new();
        if format == ImageFormat::Artifact {
            self.client
                .pull_blob(&reference, &manifest.config, &mut config)
                .await
                .map_err(&fail)?;
        }
        for index in candidates {
            let Some(desc) = manifest.layers.get(index) else {
                continue;
            };
            let mut layer = Vec::new();
            self.client
                .pull_blob(&reference, desc, &mut layer)
                .await
                .map_err(&fail)?;
            if let Some(module) = module_from_layer(format, &layer, &config, &whole)? {
                return Ok(PullResult {
                    pinned: pinned(&reference, &image_digest),
                    reference: whole,
                    image_digest,
                    module_sha256: module.sha256,
                    format,
                    module: module.bytes,
                    abi_versions: module.abi_versions,
                    root_ids: module.root_ids,
                });
            }
        }
        Err(no_plugin_error(&whole))
    }

    /// Fetches and parses the image manifest at `reference`; returns it with its digest.
    async fn manifest(
        &self,
        reference: &Reference,
        auth: &RegistryAuth,
    ) -> Result<(OciImageManifest, String)> {
        let (body, digest) = self.raw_manifest(reference, auth).await?;
        let unsupported = |reason: String| Error::UnsupportedImage {
            reference: reference.whole(),
            reason,
        };
        let probe: ManifestProbe = serde_json::from_slice(&body)
            .map_err(|e| unsupported(format!("its manifest is not valid JSON: {e}")))?;
        if probe.manifests.is_some()
            || matches!(
                probe.media_type.as_deref(),
                Some(OCI_IMAGE_INDEX_MEDIA_TYPE | IMAGE_MANIFEST_LIST_MEDIA_TYPE)
            )
        {
            return Err(unsupported(
                "it is an image index (multi-platform); pull a single image manifest by its digest"
                    .to_string(),
            ));
        }
        let manifest: OciImageManifest = serde_json::from_slice(&body)
            .map_err(|e| unsupported(format!("its manifest cannot be read: {e}")))?;
        Ok((manifest, digest))
    }

    async fn raw_manifest(
        &self,
        reference: &Reference,
        auth: &RegistryAuth,
    ) -> Result<(Vec<u8>, String)> {
        self.client
            .pull_manifest_raw(
                reference,
                auth,
                &[
                    OCI_IMAGE_MEDIA_TYPE,
                    IMAGE_MANIFEST_MEDIA_TYPE,
                    OCI_IMAGE_INDEX_MEDIA_TYPE,
                    IMAGE_MANIFEST_LIST_MEDIA_TYPE,
                ],
            )
            .await
            .map(|(body, digest)| (body.to_vec(), digest))
            .map_err(self.fail("pull of", reference))
    }

    /// Resolves `reference` to its image digest without downloading blobs.
    pub async fn resolve(&self, reference: &str) -> Result<String> {
        let reference = parse_reference(reference)?;
        let auth = self.prepare(&reference)?;
        Ok(self.raw_manifest(&reference, &auth).await?.1)
    }

    /// Points `tag` in the repository of `source` at the image `source` names (by tag or digest).
    /// The manifest bytes are copied unchanged, so the image digest stays the same.
    pub async fn tag(&self, source: &str, tag: &str) -> Result<TagResult> {
        let source = parse_reference(source)?;
        let target = parse_reference(&format!(
            "{}/{}:{tag}",
            source.registry(),
            source.repository()
        ))?;
        let auth = self.prepare(&source)?;
        let (body, digest) = self.raw_manifest(&source, &auth).await?;
        let probe: ManifestProbe = serde_json::from_slice(&body).unwrap_or_default();
        let media_type = probe
            .media_type
            .unwrap_or_else(|| OCI_IMAGE_MEDIA_TYPE.to_string());
        let content_type = media_type.parse().map_err(|_| Error::UnsupportedImage {
            reference: source.whole(),
            reason: format!("its manifest media type `{media_type}` is not a valid header"),
        })?;
        self.client
            .auth(&target, &auth, RegistryOperation::Push)
            .await
            .map_err(self.fail("tag", &target))?;
        self.client
            .push_manifest_raw(&target, body, content_type)
            .await
            .map_err(self.fail("tag", &target))?;
        Ok(TagResult {
            reference: target.whole(),
            image_digest: digest,
        })
    }

    /// The tags of `repository` (`registry/repository`; a tag or digest on it is ignored), sorted.
    pub async fn list_tags(&self, repository: &str) -> Result<Vec<String>> {
        let reference = parse_reference(repository)?;
        let auth = self.prepare(&reference)?;
        let display = format!("{}/{}", reference.registry(), reference.repository());
        let mut tags: Vec<String> = Vec::new();
        // Follow pagination by `last`, for registries that cap the page size.
        for _page in 0..MAX_TAG_PAGES {
            let last = tags.last().cloned();
            let response = self
                .client
                .list_tags(&reference, &auth, Some(TAG_PAGE), last.as_deref())
                .await
                .map_err(|source| Error::Registry {
                    operation: "list tags of",
                    reference: display.clone(),
                    detail: chain(&source),
                    hint: hint(&source, self.options.insecure),
                    source: Box::new(source),
                })?;
            let full_page = response.tags.len() >= TAG_PAGE;
            let before = tags.len();
            tags.extend(
                response
                    .tags
                    .into_iter()
                    .filter(|t| Some(t) != last.as_ref()),
            );
            if !full_page || tags.len() == before {
                break;
            }
        }
        tags.sort();
        tags.dedup();
        Ok(tags)
    }
}

const TAG_PAGE: usize = 1000;
const MAX_TAG_PAGES: usize = 1000;

#[derive(Deserialize, Default)]
struct ManifestProbe {
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<serde_json::Value>,
}

fn pinned(reference: &Reference, digest: &str) -> String {
    format!(
        "{}/{}@{digest}",
        reference.registry(),
        reference.repository()
    )
}

/// A one-line suggestion for a registry error.
fn hint(err: &OciDistributionError, insecure: bool) -> String {
    let credentials = "check the credentials: pass a username and password, or add the registry to docker's config.json";
    match err {
        OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::AuthenticationFailure(_)
        | OciDistributionError::ServerError {
            code: 401 | 403, ..
        } => credentials.to_string(),
        OciDistributionError::RegistryError { envelope, .. } => {
            let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
            if codes
                .iter()
                .any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied))
            {
                credentials.to_string()
            } else if codes.iter().any(|c| {
                matches!(
                    c,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::NotFound
                        | OciErrorCode::BlobUnknown
                )
            }) {
                "check the repository name and the tag or digest (list the repository's tags to see what exists)".to_string()
            } else {
                "the registry refused the request; see its message above".to_string()
            }
        }
        OciDistributionError::ImageManifestNotFoundError(_) => {
            "check the repository name and the tag or digest".to_string()
        }
        OciDistributionError::ServerError { code: 404, .. } => {
            "check the registry address, the repository name and the tag or digest".to_string()
        }
        OciDistributionError::DigestError(_) => "the registry returned content that does not match its digest; retry, and report it to the registry's operator if it persists".to_string(),
        OciDistributionError::RequestError(e) if e.is_timeout() => {
            "the registry did not answer in time; check the address and your network".to_string()
        }
        OciDistributionError::RequestError(_) if !insecure => {
            "check that the registry is reachable at that address; for a plain-HTTP registry on localhost use the insecure option (--insecure)".to_string()
        }
        OciDistributionError::RequestError(_) => {
            "check that the registry is running and reachable at that address".to_string()
        }
        _ => "check the registry address and try again".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_need_a_registry_host() {
        let r = parse_reference("127.0.0.1:5000/filters/auth:v1").unwrap();
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.repository(), "filters/auth");
        assert_eq!(r.tag(), Some("v1"));
        let d = format!("sha256:{}", "a".repeat(64));
        let r = parse_reference(&format!("localhost:5000/x@{d}")).unwrap();
        assert_eq!(r.digest(), Some(d.as_str()));
        assert_eq!(
            parse_reference("registry.test/x").unwrap().tag(),
            Some("latest")
        );
        for bad in ["filter:v1", "library/filter:v1", "", "registry.test/"] {
            let err = parse_reference(bad).unwrap_err();
            assert!(
                err.to_string().contains("REGISTRY[:PORT]/REPOSITORY"),
                "{err}"
            );
        }
    }
}
