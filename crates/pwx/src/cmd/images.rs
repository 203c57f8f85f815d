//! `pwx images`: the modules in the local store (pulled, pushed or downloaded), with both digests.

use pwx_oci::StoreEntry;

use crate::modules::SourceArgs;
use crate::progress::{print_json, write_stdout};

/// Arguments of `pwx images`.
#[derive(clap::Args)]
pub(crate) struct ImagesArgs {
    /// Machine-readable output (a JSON array on stdout).
    #[arg(long)]
    json: bool,
    /// Show full digests instead of the first 12 hex digits.
    #[arg(long)]
    no_trunc: bool,
    #[command(flatten)]
    sources: SourceArgs,
}

pub(crate) fn execute(args: ImagesArgs) -> anyhow::Result<()> {
    let opts = args.sources.options()?;
    let entries = opts.cache.list()?;
    if args.json {
        return print_json(&entries);
    }
    if entries.is_empty() {
        eprintln!(
            "no modules in {} (pwx pull, pwx push and URL/oci:// filters add them)",
            opts.cache.dir().display()
        );
        return Ok(());
    }
    let short = |s: &str| -> String {
        let hex = s.strip_prefix("sha256:").unwrap_or(s);
        if args.no_trunc {
            s.to_string()
        } else {
            hex.chars().take(12).collect()
        }
    };
    let rows: Vec<[String; 7]> = entries
        .iter()
        .map(|e: &StoreEntry| {
            [
                e.repository.clone().unwrap_or_else(|| e.source.clone()),
                e.tag.clone().unwrap_or_else(|| "-".to_string()),
                e.format.map_or("-".to_string(), |f| f.to_string()),
                e.image_digest.as_deref().map_or("-".to_string(), short),
                short(&e.sha256),
                e.size.to_string(),
                if e.abi_versions.is_empty() {
                    "-".to_string()
                } else {
                    e.abi_versions.join(",")
                },
            ]
        })
        .collect();
    let header = [
        "REPOSITORY / SOURCE",
        "TAG",
        "FORMAT",
        "IMAGE DIGEST",
        "MODULE SHA256",
        "SIZE",
        "ABI",
    ];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    let mut line = |cells: &[&str]| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        text.push_str(out.trim_end());
        text.push('\n');
    };
    line(&header);
    for row in &rows {
        line(&row.each_ref().map(String::as_str));
    }
    write_stdout(&text)
}
