//! `pwx pull`: fetch a module image (compat, Docker compat or Wasm artifact) into the local cache.

use std::path::PathBuf;

use anyhow::Context as _;
use pwx_oci::ImageFormat;
use serde::Serialize;

use crate::cmd::push::{list_or_none, strip_oci};
use crate::modules::{SourceArgs, resolve};
use std::fmt::Write as _;

use crate::progress::{print_json, spinner, write_stdout};

/// Arguments of `pwx pull`.
#[derive(clap::Args)]
pub(crate) struct PullArgs {
    /// The image: REGISTRY[:PORT]/REPOSITORY:TAG or …@sha256:DIGEST (an `oci://` prefix is
    /// accepted).
    reference: String,
    /// Also copy the module to this file.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Refuse the module unless its sha256 is this (64 hex digits).
    #[arg(long, value_name = "HEX")]
    sha256: Option<String>,
    /// Machine-readable output (JSON on stdout, no progress).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    sources: SourceArgs,
}

#[derive(Serialize)]
struct PullOutput<'a> {
    reference: &'a str,
    image_digest: &'a str,
    module_sha256: &'a str,
    format: ImageFormat,
    size: u64,
    abi_versions: &'a [String],
    root_ids: &'a [String],
    path: &'a std::path::Path,
    output: Option<&'a std::path::Path>,
    from_cache: bool,
}

pub(crate) fn execute(args: PullArgs) -> anyhow::Result<()> {
    let reference = strip_oci(&args.reference);
    let opts = args.sources.options()?;
    let bar = spinner(args.json, format!("pulling {reference}"));
    let module = resolve(&format!("oci://{reference}"), args.sha256.as_deref(), &opts);
    bar.finish_and_clear();
    let module = module?;
    let Some(image) = &module.image else {
        anyhow::bail!("internal error: an oci:// source came back without its image");
    };
    if let Some(out) = &args.output {
        std::fs::write(out, &module.bytes)
            .with_context(|| format!("cannot write the module to {}", out.display()))?;
    }
    if args.json {
        return print_json(&PullOutput {
            reference: &image.reference,
            image_digest: &image.image_digest,
            module_sha256: &module.sha256,
            format: image.format,
            size: module.bytes.len() as u64,
            abi_versions: &module.abi_versions,
            root_ids: &image.root_ids,
            path: &module.path,
            output: args.output.as_deref(),
            from_cache: module.from_cache,
        });
    }
    let how = if module.from_cache {
        "from the local cache"
    } else {
        "downloaded"
    };
    let mut text = String::new();
    writeln!(text, "pulled {} ({}, {how})", image.reference, image.format)?;
    writeln!(text, "  image digest   {}", image.image_digest)?;
    writeln!(text, "  module sha256  {}", module.sha256)?;
    writeln!(
        text,
        "  module         {} bytes, ABI {}",
        module.bytes.len(),
        list_or_none(&module.abi_versions)
    )?;
    if !image.root_ids.is_empty() {
        writeln!(text, "  root ids       {}", image.root_ids.join(", "))?;
    }
    writeln!(text, "  cached at      {}", module.path.display())?;
    if let Some(out) = &args.output {
        writeln!(text, "  written to     {}", out.display())?;
    }
    write_stdout(&text)
}
