//! Image build and module extraction for the image shapes Istio's agent accepts (compat and Wasm artifact).

use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read as _, Write as _};

use flate2::{Compression, GzBuilder, read::GzDecoder};
use oci_client::manifest::{
    IMAGE_CONFIG_MEDIA_TYPE, IMAGE_DOCKER_CONFIG_MEDIA_TYPE, IMAGE_DOCKER_LAYER_GZIP_MEDIA_TYPE,
    IMAGE_LAYER_GZIP_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE, OciDescriptor,
    OciImageManifest,
};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::wasm::{self, sha256_hex};

/// Layer media type of a Wasm artifact: the raw module.
pub const WASM_LAYER_MEDIA_TYPE: &str = "application/vnd.module.wasm.content.layer.v1+wasm";
/// Config media type of a Wasm artifact.
pub const WASM_CONFIG_MEDIA_TYPE: &str = "application/vnd.module.wasm.config.v1+json";
/// Layer media type of an OCI compat image (tar+gzip holding `plugin.wasm`).
pub const OCI_COMPAT_LAYER_MEDIA_TYPE: &str = IMAGE_LAYER_GZIP_MEDIA_TYPE;
/// Layer media type of a Docker compat image (tar+gzip holding `plugin.wasm`).
pub const DOCKER_COMPAT_LAYER_MEDIA_TYPE: &str = IMAGE_DOCKER_LAYER_GZIP_MEDIA_TYPE;
/// Manifest annotation marking a compat image.
pub const VARIANT_ANNOTATION: &str = "module.wasm.image/variant";
/// File name of the module inside a compat layer.
pub const PLUGIN_FILE: &str = "plugin.wasm";
/// Default `type` recorded in a Wasm artifact's config.
pub const DEFAULT_RUNTIME_TYPE: &str = "envoy_proxy";
/// Largest module pwx extracts from a compat layer (guards against gzip bombs).
pub const MAX_MODULE_SIZE: u64 = 512 * 1024 * 1024;

/// The three image shapes Istio's agent accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageFormat {
    /// OCI "compat": `plugin.wasm` in an `application/vnd.oci.image.layer.v1.tar+gzip` layer,
    /// manifest annotated `module.wasm.image/variant=compat`, standard OCI image config.
    Compat,
    /// Docker "compat": `plugin.wasm` in an `application/vnd.docker.image.rootfs.diff.tar.gzip`
    /// layer, Docker schema 2 manifest and config media types.
    DockerCompat,
    /// Wasm artifact (the solo.io "oci" variant): the raw module as an
    /// `application/vnd.module.wasm.content.layer.v1+wasm` layer with an
    /// `application/vnd.module.wasm.config.v1+json` config.
    Artifact,
}

impl ImageFormat {
    /// The short name used on the command line and in JSON: `compat`, `docker-compat`, `artifact`.
    pub fn as_str(self) -> &'static str {
        match self {
            ImageFormat::Compat => "compat",
            ImageFormat::DockerCompat => "docker-compat",
            ImageFormat::Artifact => "artifact",
        }
    }
}

impl fmt::Display for ImageFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ImageFormat {
    type Err = String;

    /// Accepts `compat`, `docker-compat`, `artifact`, and `oci` / `wasm` as aliases of `artifact`.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "compat" => Ok(ImageFormat::Compat),
            "docker-compat" | "docker" => Ok(ImageFormat::DockerCompat),
            "artifact" | "oci" | "wasm" => Ok(ImageFormat::Artifact),
            other => Err(format!(
                "unknown image format `{other}`: use compat, docker-compat or artifact"
            )),
        }
    }
}

/// How to build an image from a module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildOptions {
    /// Which image shape to produce.
    pub format: ImageFormat,
    /// Root ids recorded in a Wasm artifact's config (`config.rootIds`); ignored for compat.
    pub root_ids: Vec<String>,
    /// Runtime `type` recorded in a Wasm artifact's config; [`DEFAULT_RUNTIME_TYPE`] by default.
    pub runtime_type: String,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            format: ImageFormat::Compat,
            root_ids: Vec::new(),
            runtime_type: DEFAULT_RUNTIME_TYPE.to_string(),
        }
    }
}

impl BuildOptions {
    /// Options for `format` with no root ids and the default runtime type.
    pub fn new(format: ImageFormat) -> Self {
        BuildOptions {
            format,
            ..BuildOptions::default()
        }
    }
}

/// The config blob of a Wasm artifact (`application/vnd.module.wasm.config.v1+json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct WasmConfig {
    /// Runtime type, e.g. `envoy_proxy`.
    #[serde(rename = "type", default)]
    pub runtime_type: String,
    /// ABI versions the module implements, e.g. `v0.2.1`.
    #[serde(rename = "abiVersions", default)]
    pub abi_versions: Vec<String>,
    /// Runtime-specific configuration.
    #[serde(default)]
    pub config: WasmRuntimeConfig,
}

/// The `config` object of a [`WasmConfig`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct WasmRuntimeConfig {
    /// Root ids the filter exposes. Written as `rootIds`; `root_ids` is accepted on read.
    #[serde(rename = "rootIds", alias = "root_ids", default)]
    pub root_ids: Vec<String>,
}

/// A complete image: manifest, config blob and layer blobs, with its digests.
///
/// The manifest bytes are fixed at construction, so [`Image::digest`] is the digest the registry
/// will report after a push.
#[derive(Debug, Clone)]
pub struct Image {
    format: ImageFormat,
    manifest: OciImageManifest,
    manifest_json: Vec<u8>,
    config: Vec<u8>,
    layers: Vec<Vec<u8>>,
    digest: String,
    module: ExtractedModule,
}

/// A module taken out of an image, with what the image says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractedModule {
    /// The image shape it came from.
    pub format: ImageFormat,
    /// The module bytes.
    pub bytes: Vec<u8>,
    /// Hex sha256 of the module bytes.
    pub sha256: String,
    /// ABI versions: from the artifact config, or from the module's marker exports for compat.
    pub abi_versions: Vec<String>,
    /// Root ids from the artifact config (empty for compat images).
    pub root_ids: Vec<String>,
}

impl Image {
    /// Builds an image from `wasm` in the requested format.
    ///
    /// Reproducible: the same bytes and options always give the same manifest digest (fixed tar
    /// owners and times, fixed gzip header, canonical JSON, no timestamps).
    pub fn build(wasm: &[u8], options: &BuildOptions) -> Result<Image> {
        let info = wasm::inspect(wasm, "the module to package")?;
        let (config, config_media_type, layer, layer_media_type, manifest_media_type, annotations) =
            match options.format {
                ImageFormat::Compat | ImageFormat::DockerCompat => {
                    let tar = plugin_tar(wasm)?;
                    let diff_id = format!("sha256:{}", sha256_hex(&tar));
                    let layer = gzip(&tar)?;
                    let config = image_config(&diff_id)?;
                    if options.format == ImageFormat::Compat {
                        let mut ann = BTreeMap::new();
                        ann.insert(VARIANT_ANNOTATION.to_string(), "compat".to_string());
                        (
                            config,
                            IMAGE_CONFIG_MEDIA_TYPE,
                            layer,
                            OCI_COMPAT_LAYER_MEDIA_TYPE,
                            OCI_IMAGE_MEDIA_TYPE,
                            Some(ann),
                        )
                    } else {
                        (
                            config,
                            IMAGE_DOCKER_CONFIG_MEDIA_TYPE,
                            layer,
                            DOCKER_COMPAT_LAYER_MEDIA_TYPE,
                            IMAGE_MANIFEST_MEDIA_TYPE,
                            None,
                        )
                    }
                }
                ImageFormat::Artifact => {
                    let config = WasmConfig {
                        runtime_type: options.runtime_type.clone(),
                        abi_versions: info.abi_versions.clone(),
                        config: WasmRuntimeConfig {
                            root_ids: options.root_ids.clone(),
                        },
                    };
                    let config = serde_json::to_vec(&config).map_err(|e| Error::Build {
                        reason: format!("encoding the Wasm config: {e}"),
                    })?;
                    (
                        config,
                        WASM_CONFIG_MEDIA_TYPE,
                        wasm.to_vec(),
                        WASM_LAYER_MEDIA_TYPE,
                        OCI_IMAGE_MEDIA_TYPE,
                        None,
                    )
                }
            };
        let manifest = OciImageManifest {
            schema_version: 2,
            media_type: Some(manifest_media_type.to_string()),
            config: descriptor(config_media_type, &config),
            layers: vec![descriptor(layer_media_type, &layer)],
            annotations,
            ..OciImageManifest::default()
        };
        Image::from_parts(manifest, config, vec![layer])
    }

    /// Assembles an image from a manifest and its blobs (`layers` in manifest order), checking that
    /// the blobs match the manifest's descriptors and that it is one of the accepted shapes.
    ///
    /// This is how images in shapes pwx does not build itself are made, e.g. for tests.
    pub fn from_parts(
        manifest: OciImageManifest,
        config: Vec<u8>,
        layers: Vec<Vec<u8>>,
    ) -> Result<Image> {
        let bad = |reason: String| Error::Build { reason };
        if layers.len() != manifest.layers.len() {
            return Err(bad(format!(
                "the manifest lists {} layers but {} were given",
                manifest.layers.len(),
                layers.len()
            )));
        }
        check_blob("config", &manifest.config, &config).map_err(bad)?;
        for (i, (desc, blob)) in manifest.layers.iter().zip(&layers).enumerate() {
            check_blob(&format!("layer {i}"), desc, blob).map_err(bad)?;
        }
        let (format, candidates) = classify(&manifest, "the image being built")?;
        let mut module = None;
        for index in candidates {
            let layer = layers.get(index).map(Vec::as_slice).unwrap_or_default();
            if let Some(m) = module_from_layer(format, layer, &config, "the image being built")? {
                module = Some(m);
                break;
            }
        }
        let module = module.ok_or_else(|| no_plugin_error("the image being built"))?;
        let manifest_json = serde_json::to_vec(&manifest).map_err(|e| Error::Build {
            reason: format!("encoding the manifest: {e}"),
        })?;
        let digest = format!("sha256:{}", sha256_hex(&manifest_json));
        Ok(Image {
            format,
            manifest,
            manifest_json,
            config,
            layers,
            digest,
            module,
        })
    }

    /// The image shape.
    pub fn format(&self) -> ImageFormat {
        self.format
    }
    /// The image (manifest) digest, `sha256:<hex>`.
    pub fn digest(&self) -> &str {
        &self.digest
    }
    /// Hex sha256 of the module inside the image.
    pub fn module_sha256(&self) -> &str {
        &self.module.sha256
    }
    /// The module inside the image, with its ABI versions and root ids.
    pub fn module(&self) -> &ExtractedModule {
        &self.module
    }
    /// The manifest.
    pub fn manifest(&self) -> &OciImageManifest {
        &self.manifest
    }
    /// The exact manifest bytes that are pushed (and hashed into [`Image::digest`]).
    pub fn manifest_json(&self) -> &[u8] {
        &self.manifest_json
    }
    /// The manifest's media type (OCI or Docker schema 2).
    pub fn manifest_media_type(&self) -> &str {
        self.manifest
            .media_type
            .as_deref()
            .unwrap_or(OCI_IMAGE_MEDIA_TYPE)
    }
    /// The config blob.
    pub fn config(&self) -> &[u8] {
        &self.config
    }
    /// The layer blobs, in manifest order.
    pub fn layers(&self) -> &[Vec<u8>] {
        &self.layers
    }
}

/// A descriptor for `blob` with the given media type.
pub fn descriptor(media_type: &str, blob: &[u8]) -> OciDescriptor {
    OciDescriptor {
        media_type: media_type.to_string(),
        digest: format!("sha256:{}", sha256_hex(blob)),
        size: i64::try_from(blob.len()).unwrap_or(i64::MAX),
        ..OciDescriptor::default()
    }
}

fn check_blob(what: &str, desc: &OciDescriptor, blob: &[u8]) -> std::result::Result<(), String> {
    let digest = format!("sha256:{}", sha256_hex(blob));
    if desc.digest != digest || usize::try_from(desc.size).ok() != Some(blob.len()) {
        return Err(format!(
            "{what} does not match its descriptor: descriptor says {} ({} bytes), blob is {digest} ({} bytes)",
            desc.digest,
            desc.size,
            blob.len()
        ));
    }
    Ok(())
}

/// A tar archive holding only `plugin.wasm`, with fixed owner, mode and time.
pub fn plugin_tar(wasm: &[u8]) -> Result<Vec<u8>> {
    let err = |e: std::io::Error| Error::Build {
        reason: format!("writing the tar layer: {e}"),
    };
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(wasm.len() as u64);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    let mut builder = tar::Builder::new(Vec::new());
    builder
        .append_data(&mut header, PLUGIN_FILE, wasm)
        .map_err(err)?;
    builder.into_inner().map_err(err)
}

/// A compat layer: [`plugin_tar`] compressed with a fixed gzip header (mtime 0, OS unknown).
pub fn compat_layer(wasm: &[u8]) -> Result<Vec<u8>> {
    gzip(&plugin_tar(wasm)?)
}

fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    let err = |e: std::io::Error| Error::Build {
        reason: format!("compressing the layer: {e}"),
    };
    let mut enc = GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::new(), Compression::best());
    enc.write_all(data).map_err(err)?;
    enc.finish().map_err(err)
}

#[derive(Serialize)]
struct ImageConfig<'a> {
    architecture: &'a str,
    os: &'a str,
    config: BTreeMap<String, String>,
    rootfs: RootFs<'a>,
}

#[derive(Serialize)]
struct RootFs<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    diff_ids: Vec<&'a str>,
}

/// A minimal OCI image config for a compat image (platform `wasi/wasm`, one layer).
fn image_config(diff_id: &str) -> Result<Vec<u8>> {
    let cfg = ImageConfig {
        architecture: "wasm",
        os: "wasi",
        config: BTreeMap::new(),
        rootfs: RootFs {
            kind: "layers",
            diff_ids: vec![diff_id],
        },
    };
    serde_json::to_vec(&cfg).map_err(|e| Error::Build {
        reason: format!("encoding the image config: {e}"),
    })
}

/// Decides the image shape from its manifest and returns the indices of the layers that may hold
/// the module, in the order to try them.
pub fn classify(manifest: &OciImageManifest, reference: &str) -> Result<(ImageFormat, Vec<usize>)> {
    if let Some(i) = manifest
        .layers
        .iter()
        .position(|l| l.media_type == WASM_LAYER_MEDIA_TYPE)
    {
        return Ok((ImageFormat::Artifact, vec![i]));
    }
    for (media_type, format) in [
        (OCI_COMPAT_LAYER_MEDIA_TYPE, ImageFormat::Compat),
        (DOCKER_COMPAT_LAYER_MEDIA_TYPE, ImageFormat::DockerCompat),
    ] {
        // Last layer first: in a layered image the newest layer wins.
        let idx: Vec<usize> = (0..manifest.layers.len())
            .rev()
            .filter(|&i| manifest.layers[i].media_type == media_type)
            .collect();
        if !idx.is_empty() {
            return Ok((format, idx));
        }
    }
    let found: Vec<&str> = manifest
        .layers
        .iter()
        .map(|l| l.media_type.as_str())
        .collect();
    Err(Error::UnsupportedImage {
        reference: reference.to_string(),
        reason: if found.is_empty() {
            "it has no layers".to_string()
        } else {
            format!("its layers have media types [{}]", found.join(", "))
        },
    })
}

pub(crate) fn no_plugin_error(reference: &str) -> Error {
    Error::UnsupportedImage {
        reference: reference.to_string(),
        reason: format!("no layer contains a file named {PLUGIN_FILE}"),
    }
}

/// Takes the module out of one layer. `Ok(None)`: a compat layer without `plugin.wasm`.
pub fn module_from_layer(
    format: ImageFormat,
    layer: &[u8],
    config: &[u8],
    reference: &str,
) -> Result<Option<ExtractedModule>> {
    let unsupported = |reason: String| Error::UnsupportedImage {
        reference: reference.to_string(),
        reason,
    };
    match format {
        ImageFormat::Artifact => {
            let cfg: WasmConfig = serde_json::from_slice(config)
                .map_err(|e| unsupported(format!("its Wasm config is not valid JSON: {e}")))?;
            let info = wasm::inspect(layer, reference)?;
            Ok(Some(ExtractedModule {
                format,
                bytes: layer.to_vec(),
                sha256: info.sha256,
                abi_versions: cfg.abi_versions,
                root_ids: cfg.config.root_ids,
            }))
        }
        ImageFormat::Compat | ImageFormat::DockerCompat => {
            let Some(bytes) = plugin_from_tar_gz(layer)
                .map_err(|e| unsupported(format!("its layer is not a readable tar+gzip: {e}")))?
            else {
                return Ok(None);
            };
            let info = wasm::inspect(&bytes, reference)?;
            Ok(Some(ExtractedModule {
                format,
                bytes,
                sha256: info.sha256,
                abi_versions: info.abi_versions,
                root_ids: Vec::new(),
            }))
        }
    }
}

fn plugin_from_tar_gz(layer: &[u8]) -> std::io::Result<Option<Vec<u8>>> {
    let mut archive = tar::Archive::new(GzDecoder::new(layer));
    for entry in archive.entries()? {
        let entry = entry?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let is_plugin = entry
            .path()?
            .file_name()
            .is_some_and(|n| n == std::ffi::OsStr::new(PLUGIN_FILE));
        if !is_plugin {
            continue;
        }
        let mut bytes = Vec::new();
        entry.take(MAX_MODULE_SIZE + 1).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > MAX_MODULE_SIZE {
            return Err(std::io::Error::other(format!(
                "{PLUGIN_FILE} is larger than {MAX_MODULE_SIZE} bytes"
            )));
        }
        return Ok(Some(bytes));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module() -> Vec<u8> {
        wat::parse_str(
            r#"(module (func (export "proxy_abi_version_0_2_1")) (memory (export "memory") 1))"#,
        )
        .unwrap()
    }

    #[test]
    fn compat_shape() {
        let wasm = module();
        let img = Image::build(&wasm, &BuildOptions::new(ImageFormat::Compat)).unwrap();
        let m = img.manifest();
        assert_eq!(m.media_type.as_deref(), Some(OCI_IMAGE_MEDIA_TYPE));
        assert_eq!(m.config.media_type, IMAGE_CONFIG_MEDIA_TYPE);
        assert_eq!(m.layers.len(), 1);
        assert_eq!(m.layers[0].media_type, OCI_COMPAT_LAYER_MEDIA_TYPE);
        assert_eq!(
            m.annotations.as_ref().unwrap().get(VARIANT_ANNOTATION),
            Some(&"compat".to_string())
        );
        assert_eq!(img.module().bytes, wasm);
        assert_eq!(img.module_sha256(), sha256_hex(&wasm));
        assert_eq!(img.module().abi_versions, vec!["v0.2.1"]);
        let cfg: serde_json::Value = serde_json::from_slice(img.config()).unwrap();
        assert_eq!(cfg["os"], "wasi");
        assert_eq!(
            cfg["rootfs"]["diff_ids"][0],
            format!("sha256:{}", sha256_hex(&plugin_tar(&wasm).unwrap()))
        );
        // the tar entry is plugin.wasm, owned by root, time 0
        let mut ar = tar::Archive::new(GzDecoder::new(&img.layers()[0][..]));
        let entries: Vec<_> = ar.entries().unwrap().map(|e| e.unwrap()).collect();
        assert_eq!(entries.len(), 1);
        let h = entries[0].header();
        assert_eq!(h.path().unwrap().to_str(), Some(PLUGIN_FILE));
        assert_eq!(h.mtime().unwrap(), 0);
        assert_eq!(h.uid().unwrap(), 0);
    }

    #[test]
    fn artifact_shape() {
        let wasm = module();
        let opts = BuildOptions {
            format: ImageFormat::Artifact,
            root_ids: vec!["my_root".into()],
            ..BuildOptions::default()
        };
        let img = Image::build(&wasm, &opts).unwrap();
        let m = img.manifest();
        assert_eq!(m.config.media_type, WASM_CONFIG_MEDIA_TYPE);
        assert_eq!(m.layers[0].media_type, WASM_LAYER_MEDIA_TYPE);
        assert_eq!(img.layers()[0], wasm);
        let cfg: serde_json::Value = serde_json::from_slice(img.config()).unwrap();
        assert_eq!(
            cfg,
            serde_json::json!({
                "type": "envoy_proxy",
                "abiVersions": ["v0.2.1"],
                "config": {"rootIds": ["my_root"]}
            })
        );
        assert_eq!(img.module().root_ids, vec!["my_root"]);
        assert_eq!(img.format(), ImageFormat::Artifact);
    }

    #[test]
    fn docker_compat_shape() {
        let img = Image::build(&module(), &BuildOptions::new(ImageFormat::DockerCompat)).unwrap();
        assert_eq!(img.manifest_media_type(), IMAGE_MANIFEST_MEDIA_TYPE);
        assert_eq!(
            img.manifest().config.media_type,
            IMAGE_DOCKER_CONFIG_MEDIA_TYPE
        );
        assert_eq!(
            img.manifest().layers[0].media_type,
            DOCKER_COMPAT_LAYER_MEDIA_TYPE
        );
    }

    #[test]
    fn builds_are_reproducible() {
        let wasm = module();
        for format in [
            ImageFormat::Compat,
            ImageFormat::DockerCompat,
            ImageFormat::Artifact,
        ] {
            let opts = BuildOptions::new(format);
            let a = Image::build(&wasm, &opts).unwrap();
            let b = Image::build(&wasm, &opts).unwrap();
            assert_eq!(a.digest(), b.digest(), "{format}");
            assert_eq!(a.layers(), b.layers());
            assert_eq!(a.manifest_json(), b.manifest_json());
            assert!(a.digest().starts_with("sha256:"));
        }
        // different options, different digest
        let a = Image::build(&wasm, &BuildOptions::new(ImageFormat::Artifact)).unwrap();
        let b = Image::build(
            &wasm,
            &BuildOptions {
                root_ids: vec!["x".into()],
                ..BuildOptions::new(ImageFormat::Artifact)
            },
        )
        .unwrap();
        assert_ne!(a.digest(), b.digest());
    }

    #[test]
    fn gzip_header_is_fixed() {
        let layer = compat_layer(&module()).unwrap();
        // magic, method, flags 0, mtime 0, xfl, OS 255
        assert_eq!(&layer[..4], &[0x1f, 0x8b, 8, 0]);
        assert_eq!(&layer[4..8], &[0, 0, 0, 0]);
        assert_eq!(layer[9], 255);
    }

    #[test]
    fn refuses_non_wasm_and_unknown_shapes() {
        assert!(matches!(
            Image::build(b"hello", &BuildOptions::default()),
            Err(Error::InvalidModule { .. })
        ));
        let blob = b"x".to_vec();
        let manifest = OciImageManifest {
            config: descriptor("application/json", b"{}"),
            layers: vec![descriptor("application/octet-stream", &blob)],
            ..OciImageManifest::default()
        };
        let err = Image::from_parts(manifest, b"{}".to_vec(), vec![blob]).unwrap_err();
        assert!(
            err.to_string().contains("application/octet-stream"),
            "{err}"
        );
    }

    #[test]
    fn reads_root_ids_in_snake_case_too() {
        let cfg: WasmConfig =
            serde_json::from_str(r#"{"type":"envoy_proxy","config":{"root_ids":["a"]}}"#).unwrap();
        assert_eq!(cfg.config.root_ids, vec!["a"]);
        assert!(cfg.abi_versions.is_empty());
    }

    #[test]
    fn format_names() {
        for f in [
            ImageFormat::Compat,
            ImageFormat::DockerCompat,
            ImageFormat::Artifact,
        ] {
            assert_eq!(f.as_str().parse::<ImageFormat>().unwrap(), f);
        }
        assert_eq!("oci".parse::<ImageFormat>().unwrap(), ImageFormat::Artifact);
        assert!("zip".parse::<ImageFormat>().is_err());
    }
}
