//! `pwx push`: package a module as an OCI image (compat or Wasm artifact) and push it.

use anyhow::Context as _;
use pwx_oci::{BuildOptions, Image, ImageFormat, Registry, StoreEntry, parse_reference};
use serde::Serialize;

use crate::modules::{SourceArgs, resolve};
use std::fmt::Write as _;

use crate::progress::{print_json, spinner, write_stdout};

/// Arguments of `pwx push`.
#[derive(clap::Args)]
pub(crate) struct PushArgs {
    /// The module: a .wasm file, https://…#sha256=HEX, or oci://… (re-packaged).
    module: String,
    /// Where to push: REGISTRY[:PORT]/REPOSITORY[:TAG] (an `oci://` prefix is accepted).
    reference: String,
    /// Image layout: compat (Istio's default: plugin.wasm in a tar+gzip layer), docker-compat
    /// (the same with Docker schema 2 media types), or artifact (the Wasm OCI artifact).
    #[arg(long, default_value = "compat")]
    format: ImageFormat,
    /// Root id recorded in an artifact's config (repeatable; artifact format only).
    #[arg(long = "root-id", value_name = "ID")]
    root_ids: Vec<String>,
    /// Machine-readable output (JSON on stdout, no progress).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    sources: SourceArgs,
}

#[derive(Serialize)]
struct PushOutput<'a> {
    reference: &'a str,
    pinned: &'a str,
    image_digest: &'a str,
    module_sha256: &'a str,
    format: ImageFormat,
    size: u64,
    abi_versions: &'a [String],
    root_ids: &'a [String],
}

pub(crate) fn execute(args: PushArgs) -> anyhow::Result<()> {
    if !args.root_ids.is_empty() && args.format != ImageFormat::Artifact {
        anyhow::bail!(
            "--root-id is recorded only in the artifact format's config; add --format artifact or drop --root-id"
        );
    }
    let reference = strip_oci(&args.reference);
    parse_reference(reference)?;
    let opts = args.sources.options()?;
    let module = resolve(&args.module, None, &opts)?;
    let image = Image::build(
        &module.bytes,
        &BuildOptions {
            root_ids: args.root_ids.clone(),
            ..BuildOptions::new(args.format)
        },
    )?;
    let registry = Registry::new(opts.registry.clone())?;
    let size: usize = image.layers().iter().map(Vec::len).sum::<usize>() + image.config().len();
    let bar = spinner(
        args.json,
        format!("pushing {reference} ({}, {size} bytes)", args.format),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the network runtime")?;
    let pushed = runtime.block_on(registry.push(reference, &image));
    bar.finish_and_clear();
    let pushed = pushed?;

    // Remember it locally, so `pwx images` lists what was pushed and `oci://…@digest` is a
    // cache hit afterwards.
    if let Ok(cached) = opts.cache.put(&module.bytes) {
        let parsed = parse_reference(&pushed.reference)?;
        let mut entry = StoreEntry::new(pushed.reference.clone(), &cached.sha256, cached.size);
        entry.repository = Some(format!("{}/{}", parsed.registry(), parsed.repository()));
        entry.tag = parsed
            .digest()
            .is_none()
            .then(|| parsed.tag().map(str::to_string))
            .flatten();
        entry.image_digest = Some(pushed.image_digest.clone());
        entry.format = Some(pushed.format);
        entry.abi_versions = image.module().abi_versions.clone();
        entry.root_ids = args.root_ids.clone();
        if let Err(e) = opts.cache.record(entry) {
            tracing::warn!("pushed, but the local image index was not updated: {e}");
        }
    }

    let abi = &image.module().abi_versions;
    if args.json {
        return print_json(&PushOutput {
            reference: &pushed.reference,
            pinned: &pushed.pinned,
            image_digest: &pushed.image_digest,
            module_sha256: &pushed.module_sha256,
            format: pushed.format,
            size: module.bytes.len() as u64,
            abi_versions: abi,
            root_ids: &args.root_ids,
        });
    }
    let mut text = String::new();
    writeln!(text, "pushed {} ({})", pushed.reference, pushed.format)?;
    writeln!(text, "  image digest   {}", pushed.image_digest)?;
    writeln!(text, "  module sha256  {}", pushed.module_sha256)?;
    writeln!(text, "  pinned         {}", pushed.pinned)?;
    writeln!(
        text,
        "  module         {} bytes, ABI {}",
        module.bytes.len(),
        list_or_none(abi)
    )?;
    if !args.root_ids.is_empty() {
        writeln!(text, "  root ids       {}", args.root_ids.join(", "))?;
    }
    write_stdout(&text)
}

/// `oci://host/repo:tag` → `host/repo:tag`; anything else unchanged.
pub(crate) fn strip_oci(reference: &str) -> &str {
    reference.strip_prefix("oci://").unwrap_or(reference)
}

/// `a, b` or `none` for an empty list.
pub(crate) fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join(", ")
    }
}
