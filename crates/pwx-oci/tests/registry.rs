//! Integration tests against a real Debian `docker-registry` started on 127.0.0.1 by each test.

// Test code: panicking on an unexpected error is the point.
#![allow(clippy::unwrap_used)]

mod common;

use common::{FileServer, TestRegistry, module, write_docker_config};
use oci_client::manifest::{
    IMAGE_DOCKER_CONFIG_MEDIA_TYPE, IMAGE_DOCKER_LAYER_GZIP_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE,
    OciDescriptor, OciImageManifest,
};
use pwx_oci::image::compat_layer;
use pwx_oci::wasm::sha256_hex;
use pwx_oci::{
    Auth, BuildOptions, Error, Fetcher, Image, ImageFormat, ModuleCache, ModuleSource, Registry,
    RegistryOptions,
};

fn local(auth: Auth) -> Registry {
    Registry::new(RegistryOptions {
        auth,
        insecure: true,
        ..RegistryOptions::default()
    })
    .unwrap()
}

#[tokio::test]
async fn compat_round_trip_by_tag_and_digest() {
    let reg = TestRegistry::start();
    let client = local(Auth::Anonymous);
    let wasm = module("compat");
    let image = Image::build(&wasm, &BuildOptions::new(ImageFormat::Compat)).unwrap();
    let reference = format!("{}/filters/compat:v1", reg.host());

    let pushed = client.push(&reference, &image).await.unwrap();
    assert_eq!(pushed.image_digest, image.digest());
    assert_eq!(pushed.module_sha256, sha256_hex(&wasm));
    assert_eq!(pushed.format, ImageFormat::Compat);
    assert_eq!(
        pushed.pinned,
        format!("{}/filters/compat@{}", reg.host(), image.digest())
    );

    let pulled = client.pull(&reference).await.unwrap();
    assert_eq!(pulled.module, wasm, "module must come back byte-identical");
    assert_eq!(pulled.image_digest, pushed.image_digest);
    assert_eq!(pulled.module_sha256, pushed.module_sha256);
    assert_eq!(pulled.format, ImageFormat::Compat);
    assert_eq!(pulled.abi_versions, vec!["v0.2.1"]);

    let by_digest = client.pull(&pushed.pinned).await.unwrap();
    assert_eq!(by_digest.module, wasm);
    assert_eq!(by_digest.image_digest, pushed.image_digest);
    assert_eq!(client.resolve(&reference).await.unwrap(), image.digest());

    // Reproducible: a fresh build of the same module pushes to the same digest.
    let again = Image::build(&wasm, &BuildOptions::new(ImageFormat::Compat)).unwrap();
    let pushed2 = client
        .push(&format!("{}/filters/compat:v1-again", reg.host()), &again)
        .await
        .unwrap();
    assert_eq!(pushed2.image_digest, pushed.image_digest);
}

#[tokio::test]
async fn artifact_round_trip() {
    let reg = TestRegistry::start();
    let client = local(Auth::Anonymous);
    let wasm = module("artifact");
    let opts = BuildOptions {
        format: ImageFormat::Artifact,
        root_ids: vec!["auth_root".into(), "stats_root".into()],
        ..BuildOptions::default()
    };
    let image = Image::build(&wasm, &opts).unwrap();
    let reference = format!("{}/filters/artifact:1.0.0", reg.host());
    let pushed = client.push(&reference, &image).await.unwrap();
    assert_eq!(pushed.format, ImageFormat::Artifact);

    let pulled = client.pull(&reference).await.unwrap();
    assert_eq!(pulled.module, wasm);
    assert_eq!(pulled.format, ImageFormat::Artifact);
    assert_eq!(pulled.image_digest, image.digest());
    assert_eq!(pulled.module_sha256, sha256_hex(&wasm));
    assert_eq!(pulled.root_ids, vec!["auth_root", "stats_root"]);
    assert_eq!(pulled.abi_versions, vec!["v0.2.1"]);

    let by_digest = client.pull(&pulled.pinned).await.unwrap();
    assert_eq!(by_digest.module, wasm);
}

#[tokio::test]
async fn tag_and_list_tags() {
    let reg = TestRegistry::start();
    let client = local(Auth::Anonymous);
    let repo = format!("{}/filters/tagged", reg.host());
    let v1 = Image::build(&module("v1"), &BuildOptions::new(ImageFormat::Compat)).unwrap();
    let v2 = Image::build(&module("v2"), &BuildOptions::new(ImageFormat::Artifact)).unwrap();
    client.push(&format!("{repo}:v1"), &v1).await.unwrap();
    client.push(&format!("{repo}:v2"), &v2).await.unwrap();

    let tagged = client.tag(&format!("{repo}:v2"), "stable").await.unwrap();
    assert_eq!(tagged.reference, format!("{repo}:stable"));
    assert_eq!(tagged.image_digest, v2.digest());
    // tag from a digest reference too
    let tagged = client
        .tag(&format!("{repo}@{}", v1.digest()), "old")
        .await
        .unwrap();
    assert_eq!(tagged.image_digest, v1.digest());

    assert_eq!(
        client.list_tags(&repo).await.unwrap(),
        vec!["old", "stable", "v1", "v2"]
    );
    let stable = client.pull(&format!("{repo}:stable")).await.unwrap();
    assert_eq!(stable.image_digest, v2.digest());
    assert_eq!(stable.format, ImageFormat::Artifact);
}

#[tokio::test]
async fn docker_schema_compat_image_is_pulled() {
    let reg = TestRegistry::start();
    let client = local(Auth::Anonymous);
    let wasm = module("docker");
    // Build the Docker schema 2 shape by hand with oci-client's manifest types.
    let layer = compat_layer(&wasm).unwrap();
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
            .to_vec();
    let descriptor = |media_type: &str, blob: &[u8]| OciDescriptor {
        media_type: media_type.to_string(),
        digest: format!("sha256:{}", sha256_hex(blob)),
        size: blob.len() as i64,
        ..OciDescriptor::default()
    };
    let manifest = OciImageManifest {
        schema_version: 2,
        media_type: Some(IMAGE_MANIFEST_MEDIA_TYPE.to_string()),
        config: descriptor(IMAGE_DOCKER_CONFIG_MEDIA_TYPE, &config),
        layers: vec![descriptor(IMAGE_DOCKER_LAYER_GZIP_MEDIA_TYPE, &layer)],
        ..OciImageManifest::default()
    };
    let image = Image::from_parts(manifest, config, vec![layer]).unwrap();
    assert_eq!(image.format(), ImageFormat::DockerCompat);
    let reference = format!("{}/filters/docker:latest", reg.host());
    let pushed = client.push(&reference, &image).await.unwrap();

    let pulled = client.pull(&reference).await.unwrap();
    assert_eq!(pulled.format, ImageFormat::DockerCompat);
    assert_eq!(pulled.module, wasm);
    assert_eq!(pulled.image_digest, pushed.image_digest);
    assert_eq!(pulled.module_sha256, sha256_hex(&wasm));
}

#[tokio::test]
async fn basic_auth_registry() {
    let reg = TestRegistry::start_with_auth("pwx", "s3cret");
    let wasm = module("auth");
    let image = Image::build(&wasm, &BuildOptions::new(ImageFormat::Compat)).unwrap();
    let reference = format!("{}/private/filter:v1", reg.host());

    // anonymous is refused with a hint about credentials
    let err = local(Auth::Anonymous)
        .push(&reference, &image)
        .await
        .unwrap_err();
    let msg = err.to_string();
    eprintln!("anonymous push: {msg}");
    assert!(matches!(err, Error::Registry { .. }), "{msg}");
    assert!(msg.contains("credentials"), "{msg}");
    assert!(msg.contains("private/filter"), "{msg}");

    // wrong password is refused too
    let err = local(Auth::basic("pwx", "wrong"))
        .pull(&reference)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("credentials"), "{err}");

    // explicit username/password
    let pushed = local(Auth::basic("pwx", "s3cret"))
        .push(&reference, &image)
        .await
        .unwrap();
    assert_eq!(pushed.image_digest, image.digest());

    // docker config.json
    let dir = tempfile::tempdir().unwrap();
    let config = write_docker_config(dir.path(), &reg.host(), "pwx", "s3cret");
    let client = local(Auth::DockerConfigFile(config));
    let pulled = client.pull(&reference).await.unwrap();
    assert_eq!(pulled.module, wasm);
    assert_eq!(
        client
            .list_tags(&format!("{}/private/filter", reg.host()))
            .await
            .unwrap(),
        vec!["v1"]
    );
}

#[tokio::test]
async fn missing_tag_and_unreachable_registry_explain_themselves() {
    let reg = TestRegistry::start();
    let client = local(Auth::Anonymous);
    let err = client
        .pull(&format!("{}/nothing/here:v9", reg.host()))
        .await
        .unwrap_err();
    let msg = err.to_string();
    eprintln!("missing tag: {msg}");
    assert!(msg.contains("nothing/here:v9"), "{msg}");
    assert!(msg.contains("tag or digest"), "{msg}");

    // HTTPS against a plain-HTTP registry suggests --insecure
    let tls = Registry::new(RegistryOptions {
        auth: Auth::Anonymous,
        ..RegistryOptions::default()
    })
    .unwrap();
    let msg = tls
        .pull(&format!("{}/nothing/here:v9", reg.host()))
        .await
        .unwrap_err()
        .to_string();
    eprintln!("https to http registry: {msg}");
    assert!(msg.contains("--insecure"), "{msg}");
}

#[tokio::test]
async fn oci_source_is_cached_and_listed() {
    let reg = TestRegistry::start();
    let client = local(Auth::Anonymous);
    let wasm = module("source");
    let opts = BuildOptions {
        root_ids: vec!["src_root".into()],
        ..BuildOptions::new(ImageFormat::Artifact)
    };
    let image = Image::build(&wasm, &opts).unwrap();
    let reference = format!("{}/filters/src:v3", reg.host());
    let pushed = client.push(&reference, &image).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let cache = ModuleCache::new(dir.path().join("modules"));
    let fetcher = Fetcher::new(cache.clone(), client.options().clone());
    let source = ModuleSource::parse(&format!("oci://{reference}")).unwrap();
    let got = fetcher.fetch(&source).await.unwrap();
    assert_eq!(got.bytes, wasm);
    assert!(!got.from_cache);
    assert_eq!(got.path, cache.path_for(&sha256_hex(&wasm)));
    assert_eq!(std::fs::read(&got.path).unwrap(), wasm);
    let origin = got.image.as_ref().unwrap();
    assert_eq!(origin.image_digest, pushed.image_digest);

    let list = cache.list().unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    let entry = &list[0];
    assert_eq!(
        entry.repository.as_deref(),
        Some(format!("{}/filters/src", reg.host()).as_str())
    );
    assert_eq!(entry.tag.as_deref(), Some("v3"));
    assert_eq!(entry.image_digest.as_deref(), Some(image.digest()));
    assert_eq!(entry.sha256, sha256_hex(&wasm));
    assert_eq!(entry.size, wasm.len() as u64);
    assert_eq!(entry.abi_versions, vec!["v0.2.1"]);
    assert_eq!(entry.format, Some(ImageFormat::Artifact));

    // pinned by digest: served from the cache, even with the registry gone
    let pinned = ModuleSource::parse(&format!("oci://{}", pushed.pinned)).unwrap();
    drop(reg);
    let again = fetcher.fetch(&pinned).await.unwrap();
    assert!(again.from_cache);
    assert_eq!(again.bytes, wasm);
    let origin = again.image.as_ref().unwrap();
    assert_eq!(origin.image_digest, pushed.image_digest);
    assert_eq!(origin.format, ImageFormat::Artifact);
    assert_eq!(origin.root_ids, vec!["src_root"]);

    // an expected module sha256 that does not match is refused
    let wrong = pinned.with_sha256(&"22".repeat(32)).unwrap();
    let err = fetcher.fetch(&wrong).await.unwrap_err();
    assert!(matches!(err, Error::ChecksumMismatch { .. }), "{err}");
}

#[tokio::test]
async fn url_source_verified_and_cached() {
    let wasm = module("download");
    let server = FileServer::start(wasm.clone());
    let sha = sha256_hex(&wasm);
    let dir = tempfile::tempdir().unwrap();
    let cache = ModuleCache::new(dir.path().join("modules"));
    let fetcher = Fetcher::new(
        cache.clone(),
        RegistryOptions {
            auth: Auth::Anonymous,
            ..RegistryOptions::default()
        },
    );
    let url = format!("http://127.0.0.1:{}/filters/f.wasm", server.port);

    let source = ModuleSource::parse(&format!("{url}#sha256={sha}")).unwrap();
    let got = fetcher.fetch(&source).await.unwrap();
    assert_eq!(got.bytes, wasm);
    assert_eq!(got.sha256, sha);
    assert!(!got.from_cache);
    assert_eq!(server.hits(), 1);
    let list = cache.list().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].source, url);

    // content-addressed: the second fetch does not touch the network
    let again = fetcher.fetch(&source).await.unwrap();
    assert!(again.from_cache);
    assert_eq!(server.hits(), 1);

    // the separate-argument form
    let separate = ModuleSource::parse_lenient(&url)
        .unwrap()
        .with_sha256(&sha)
        .unwrap();
    assert_eq!(fetcher.fetch(&separate).await.unwrap().sha256, sha);
}

#[tokio::test]
async fn url_checksum_mismatch_is_refused() {
    let wasm = module("tampered");
    let server = FileServer::start(wasm.clone());
    let dir = tempfile::tempdir().unwrap();
    let cache = ModuleCache::new(dir.path().join("modules"));
    let fetcher = Fetcher::new(cache.clone(), RegistryOptions::default());
    let expected = "ab".repeat(32);
    let source = ModuleSource::parse(&format!(
        "http://127.0.0.1:{}/f.wasm#sha256={expected}",
        server.port
    ))
    .unwrap();
    let err = fetcher.fetch(&source).await.unwrap_err();
    let msg = err.to_string();
    eprintln!("checksum mismatch: {msg}");
    assert!(matches!(err, Error::ChecksumMismatch { .. }), "{msg}");
    assert!(msg.contains(&expected), "{msg}");
    assert!(msg.contains(&sha256_hex(&wasm)), "{msg}");
    assert_eq!(server.hits(), 1);
    // nothing was cached or listed
    assert!(!cache.path_for(&sha256_hex(&wasm)).exists());
    assert!(cache.list().unwrap().is_empty());
}
