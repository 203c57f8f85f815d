//! Module inspection: sha256, size and the proxy-wasm ABI marker exports of a .wasm file.

use sha2::{Digest as _, Sha256};
use wasmparser::{Encoding, Parser, Payload};

use crate::error::{Error, Result};

/// Prefix of the export by which a proxy-wasm module declares its ABI version
/// (`proxy_abi_version_0_2_1` declares ABI 0.2.1).
pub const ABI_MARKER_PREFIX: &str = "proxy_abi_version_";

/// What pwx records about a module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleInfo {
    /// Lower-case hex sha256 of the module bytes (no `sha256:` prefix).
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// ABI versions declared by marker exports, as `v0.2.1`, in export order.
    pub abi_versions: Vec<String>,
}

/// Lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Parses the module's header and export section and returns its [`ModuleInfo`].
///
/// `origin` names the module in errors (a path, URL or image reference). Only the structure
/// needed to find exports is read; full validation is the runtime's job.
pub fn inspect(bytes: &[u8], origin: &str) -> Result<ModuleInfo> {
    let invalid = |reason: String| Error::InvalidModule {
        origin: origin.to_string(),
        reason,
    };
    if !bytes.is_empty() && !bytes.starts_with(b"\0asm") {
        // wasmparser's own message dumps both magic numbers as multi-line arrays.
        return Err(invalid(
            "it does not start with the wasm magic bytes (\\0asm); is it a .wasm file?".into(),
        ));
    }
    let mut abi_versions = Vec::new();
    let mut saw_header = false;
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| invalid(e.to_string()))?;
        match payload {
            Payload::Version { encoding, .. } => {
                if encoding != Encoding::Module {
                    return Err(invalid(
                        "it is a component, not a core module; proxy-wasm hosts load core modules"
                            .to_string(),
                    ));
                }
                saw_header = true;
            }
            Payload::ExportSection(reader) => {
                for export in reader {
                    let export = export.map_err(|e| invalid(e.to_string()))?;
                    if let Some(version) = abi_version_from_export(export.name) {
                        abi_versions.push(version);
                    }
                }
            }
            Payload::End(_) => break,
            _ => {}
        }
    }
    if !saw_header {
        return Err(invalid("empty input".to_string()));
    }
    Ok(ModuleInfo {
        sha256: sha256_hex(bytes),
        size: bytes.len() as u64,
        abi_versions,
    })
}

/// Turns `proxy_abi_version_0_2_1` into `v0.2.1`; `None` for any other export name.
pub fn abi_version_from_export(name: &str) -> Option<String> {
    let rest = name.strip_prefix(ABI_MARKER_PREFIX)?;
    let parts: Vec<&str> = rest.split('_').collect();
    if parts.len() != 3
        || parts
            .iter()
            .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    Some(format!("v{}", parts.join(".")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_abi_marker() {
        let wasm = wat::parse_str(
            r#"(module (func (export "proxy_abi_version_0_2_1")) (memory (export "memory") 1))"#,
        )
        .unwrap();
        let info = inspect(&wasm, "test.wasm").unwrap();
        assert_eq!(info.abi_versions, vec!["v0.2.1"]);
        assert_eq!(info.size, wasm.len() as u64);
        assert_eq!(info.sha256, sha256_hex(&wasm));
        assert_eq!(info.sha256.len(), 64);
    }

    #[test]
    fn module_without_marker_has_no_versions() {
        let wasm = wat::parse_str(r#"(module (func (export "_start")))"#).unwrap();
        assert!(inspect(&wasm, "x").unwrap().abi_versions.is_empty());
    }

    #[test]
    fn garbage_is_refused_with_origin() {
        let err = inspect(b"not wasm at all", "filter.wasm").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("filter.wasm"), "{msg}");
        assert!(msg.contains("not a valid WebAssembly module"), "{msg}");
    }

    #[test]
    fn marker_name_parsing() {
        assert_eq!(
            abi_version_from_export("proxy_abi_version_0_1_0").as_deref(),
            Some("v0.1.0")
        );
        assert_eq!(abi_version_from_export("proxy_abi_version_0_2"), None);
        assert_eq!(abi_version_from_export("proxy_abi_version_a_b_c"), None);
        assert_eq!(abi_version_from_export("proxy_on_tick"), None);
    }
}
