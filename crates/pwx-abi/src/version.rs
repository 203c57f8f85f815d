//! ABI versions and the marker export that declares them.

/// The proxy-wasm ABI versions Envoy 1.2x–1.40 accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AbiVersion {
    /// 0.1.0: Rust SDK 0.1.x.
    V0_1_0,
    /// 0.2.0: the Go SDKs.
    V0_2_0,
    /// 0.2.1: Rust SDK 0.2.x, C++ SDK, AssemblyScript.
    V0_2_1,
}

/// Prefix of every marker export name.
pub const MARKER_PREFIX: &str = "proxy_abi_version_";

/// The draft marker of the unreleased vNEXT ABI, which no Envoy release accepts.
pub const VNEXT_MARKER: &str = "proxy_abi_version_0_x_x";

impl AbiVersion {
    /// Every supported version, oldest first.
    pub const ALL: [AbiVersion; 3] = [AbiVersion::V0_1_0, AbiVersion::V0_2_0, AbiVersion::V0_2_1];

    /// The name of the marker export (`proxy_abi_version_0_2_1`, …).
    pub const fn marker(self) -> &'static str {
        match self {
            AbiVersion::V0_1_0 => "proxy_abi_version_0_1_0",
            AbiVersion::V0_2_0 => "proxy_abi_version_0_2_0",
            AbiVersion::V0_2_1 => "proxy_abi_version_0_2_1",
        }
    }

    /// The dotted version (`0.2.1`).
    pub const fn as_str(self) -> &'static str {
        match self {
            AbiVersion::V0_1_0 => "0.1.0",
            AbiVersion::V0_2_0 => "0.2.0",
            AbiVersion::V0_2_1 => "0.2.1",
        }
    }

    /// The version a marker export name declares, if it is one Envoy accepts.
    pub fn from_marker(name: &str) -> Option<AbiVersion> {
        AbiVersion::ALL.into_iter().find(|v| v.marker() == name)
    }

    /// Detects the version as Envoy does: the **first** function export, in export-section
    /// order, whose name is exactly one of the accepted markers.
    pub fn detect<'a>(function_exports: impl IntoIterator<Item = &'a str>) -> Option<AbiVersion> {
        function_exports
            .into_iter()
            .find_map(AbiVersion::from_marker)
    }

    /// Marker-like export names that are not accepted (e.g. the vNEXT draft), for diagnostics.
    pub fn unknown_markers<'a>(
        function_exports: impl IntoIterator<Item = &'a str>,
    ) -> impl Iterator<Item = &'a str> {
        function_exports.into_iter().filter(|name| {
            name.starts_with(MARKER_PREFIX) && AbiVersion::from_marker(name).is_none()
        })
    }
}

impl std::fmt::Display for AbiVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_marker_wins() {
        let exports = [
            "memory_grow",
            "proxy_abi_version_0_2_0",
            "proxy_abi_version_0_2_1",
        ];
        assert_eq!(AbiVersion::detect(exports), Some(AbiVersion::V0_2_0));
    }

    #[test]
    fn vnext_is_not_accepted() {
        let exports = ["proxy_abi_version_0_x_x"];
        assert_eq!(AbiVersion::detect(exports), None);
        assert_eq!(
            AbiVersion::unknown_markers(exports).collect::<Vec<_>>(),
            vec![VNEXT_MARKER]
        );
    }

    #[test]
    fn markers_round_trip() {
        for v in AbiVersion::ALL {
            assert_eq!(AbiVersion::from_marker(v.marker()), Some(v));
        }
        assert!(AbiVersion::V0_1_0 < AbiVersion::V0_2_1);
    }
}
