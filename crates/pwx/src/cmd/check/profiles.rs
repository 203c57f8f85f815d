//! Target compatibility profiles, read from `data/targets.toml` (embedded in the binary): which
//! ABI versions, host functions and WASI functions each proxy provides, with the source of each
//! fact.

use anyhow::{Context as _, bail};
use pwx_abi::AbiVersion;
use pwx_abi::wasi::WasiCall;
use serde::Deserialize;
use std::collections::BTreeMap;

const TARGETS_TOML: &str = include_str!("../../../data/targets.toml");

/// The target `pwx check` uses when none is given.
pub(crate) const DEFAULT_TARGET: &str = "envoy-1.40";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    wasi_sets: BTreeMap<String, WasiSet>,
    target: Vec<RawTarget>,
    istio_envoy: IstioEnvoy,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WasiSet {
    functions: WasiFunctions,
    source: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum WasiFunctions {
    /// `"all"`: every function of pwx-abi's table.
    All(String),
    List(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    name: String,
    description: String,
    abi_versions: Vec<String>,
    abi_source: String,
    wasi: String,
    #[serde(default)]
    wasi_note: Option<String>,
    env_missing: Vec<String>,
    env_source: String,
    max_memory_bytes: u64,
    memory_source: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IstioEnvoy {
    source: String,
    versions: BTreeMap<String, String>,
}

/// One resolved target profile.
#[derive(Debug, Clone)]
pub(crate) struct Profile {
    /// The name the user asked for (`istio-1.24`).
    pub requested: String,
    /// The profile that answers for it (`envoy-1.24`).
    pub name: String,
    pub description: String,
    /// How the requested name was mapped to the profile, when it was.
    pub mapping: Option<String>,
    pub abi_versions: Vec<AbiVersion>,
    pub abi_source: String,
    pub wasi: Vec<WasiCall>,
    pub wasi_source: String,
    pub env_missing: Vec<String>,
    pub env_source: String,
    pub max_memory_bytes: u64,
    pub memory_source: String,
}

fn load() -> anyhow::Result<File> {
    toml::from_str(TARGETS_TOML).context("data/targets.toml (embedded) is malformed")
}

/// The names `--target` accepts, for help and errors.
pub(crate) fn names() -> anyhow::Result<Vec<String>> {
    let file = load()?;
    let mut names: Vec<String> = file.target.iter().map(|t| t.name.clone()).collect();
    names.extend(
        file.istio_envoy
            .versions
            .keys()
            .map(|v| format!("istio-{v}")),
    );
    names.push("envoy-1.NN (1.24 and newer)".into());
    Ok(names)
}

/// Parses `1.33` into (1, 33).
fn version(text: &str) -> Option<(u32, u32)> {
    let (major, minor) = text.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// Resolves `--target NAME`.
pub(crate) fn resolve(requested: &str) -> anyhow::Result<Profile> {
    let file = load()?;
    let mut mapping = None;
    let mut name = requested.to_string();
    if !file.target.iter().any(|t| t.name == name) {
        if let Some(istio) = requested.strip_prefix("istio-")
            && let Some(envoy) = file.istio_envoy.versions.get(istio)
        {
            mapping = Some(format!(
                "Istio {istio} ships Envoy {envoy} ({})",
                file.istio_envoy.source
            ));
            name = format!("envoy-{envoy}");
        }
        if let Some(wanted) = name.strip_prefix("envoy-").and_then(version) {
            // The newest profiled Envoy not newer than the one asked for.
            let best = file
                .target
                .iter()
                .filter_map(|t| {
                    let v = t.name.strip_prefix("envoy-").and_then(version)?;
                    (v <= wanted).then_some((v, t.name.clone()))
                })
                .max();
            match best {
                Some((_, profile)) if profile != name => {
                    let note = format!(
                        "Envoy {} is checked with the {profile} profile (the newest profiled release not newer than it)",
                        &name["envoy-".len()..]
                    );
                    mapping = Some(match mapping {
                        Some(m) => format!("{m}; {note}"),
                        None => note,
                    });
                    name = profile;
                }
                Some(_) => {}
                None => bail!(
                    "no compatibility profile covers {requested}: the oldest profiled Envoy is 1.24 \
                     (older Istio releases: istio-1.6, istio-1.7, istio-1.8). Targets: {}",
                    names()?.join(", ")
                ),
            }
        }
    }
    let Some(raw) = file.target.iter().find(|t| t.name == name) else {
        bail!(
            "unknown target {requested:?}. Targets: {}",
            names()?.join(", ")
        );
    };
    let abi_versions = raw
        .abi_versions
        .iter()
        .map(|v| {
            AbiVersion::ALL
                .into_iter()
                .find(|known| known.as_str() == v)
                .with_context(|| {
                    format!("data/targets.toml: {}: unknown ABI version {v}", raw.name)
                })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let set = file.wasi_sets.get(&raw.wasi).with_context(|| {
        format!(
            "data/targets.toml: {}: unknown wasi set {}",
            raw.name, raw.wasi
        )
    })?;
    let wasi = match &set.functions {
        WasiFunctions::All(word) if word == "all" => WasiCall::ALL.to_vec(),
        WasiFunctions::All(other) => {
            bail!(
                "data/targets.toml: wasi set {}: functions = {other:?}; expected \"all\" or a list",
                raw.wasi
            )
        }
        WasiFunctions::List(list) => list
            .iter()
            .map(|n| {
                WasiCall::from_name(n).with_context(|| {
                    format!(
                        "data/targets.toml: wasi set {}: {n} is not in pwx-abi's WASI table",
                        raw.wasi
                    )
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?,
    };
    for missing in &raw.env_missing {
        if pwx_abi::HostCall::from_name(missing).is_none() {
            bail!(
                "data/targets.toml: {}: env_missing names {missing}, which is not in pwx-abi's HostCall table",
                raw.name
            );
        }
    }
    let wasi_source = match &raw.wasi_note {
        Some(note) => format!("{}; {note}", set.source),
        None => set.source.clone(),
    };
    Ok(Profile {
        requested: requested.to_string(),
        name: raw.name.clone(),
        description: raw.description.clone(),
        mapping,
        abi_versions,
        abi_source: raw.abi_source.clone(),
        wasi,
        wasi_source,
        env_missing: raw.env_missing.clone(),
        env_source: raw.env_source.clone(),
        max_memory_bytes: raw.max_memory_bytes,
        memory_source: raw.memory_source.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_profile_resolves() {
        for name in load().unwrap().target.iter().map(|t| t.name.clone()) {
            let profile = resolve(&name).unwrap();
            assert_eq!(profile.name, name);
            assert!(!profile.abi_versions.is_empty());
        }
    }

    #[test]
    fn istio_and_envoy_versions_map_to_profiles() {
        let p = resolve("istio-1.24").unwrap();
        assert_eq!(p.name, "envoy-1.24");
        assert!(p.mapping.unwrap().contains("Envoy 1.32"));
        assert_eq!(resolve("istio-1.26").unwrap().name, "envoy-1.33");
        assert_eq!(resolve("envoy-1.40").unwrap().mapping, None);
        assert_eq!(resolve("envoy-1.45").unwrap().name, "envoy-1.40");
        assert!(resolve("envoy-1.20").is_err());
        assert!(
            resolve("nginx")
                .unwrap_err()
                .to_string()
                .contains("istio-1.6")
        );
        assert_eq!(
            resolve("istio-1.6").unwrap().abi_versions,
            [AbiVersion::V0_1_0]
        );
        assert!(resolve("envoy-1.24").unwrap().wasi.len() < WasiCall::ALL.len());
    }
}
