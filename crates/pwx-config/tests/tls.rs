//! TLS in both formats: Envoy's `DownstreamTlsContext` / `UpstreamTlsContext` (file and inline
//! data sources, ALPN, `tls_params`) and pwx's `listeners[].tls` / `clusters[].tls`; every field
//! outside the supported subset is an error with its place in the file.
#![allow(clippy::unwrap_used)]

use pwx_config::*;
use std::path::PathBuf;

fn error(text: &str, file: &str) -> String {
    match parse_str(text, file) {
        Ok(loaded) => panic!("expected an error, loaded {:?}", loaded.config),
        Err(error) => error.to_string(),
    }
}

/// An Envoy bootstrap whose listener has `downstream` as its `common_tls_context` (after
/// `context_extra` in the DownstreamTlsContext) and whose cluster has `upstream` as its
/// UpstreamTlsContext body.
fn envoy(context_extra: &str, downstream: &str, upstream: &str) -> String {
    format!(
        r#"static_resources:
  listeners:
  - name: main
    address: {{socket_address: {{address: 127.0.0.1, port_value: 10443}}}}
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
{context_extra}          common_tls_context:
{downstream}
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{prefix: /}}
                route: {{cluster: backend}}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
  clusters:
  - name: backend
    load_assignment:
      endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: 8443}}}}}}}}]}}]
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
{upstream}
"#
    )
}

const CERTS: &str = "            tls_certificates:
            - certificate_chain: {filename: certs/server.pem}
              private_key: {inline_string: \"-----BEGIN PRIVATE KEY-----\\nAAAA\\n-----END PRIVATE KEY-----\\n\"}";

const UPSTREAM: &str = "        sni: backend.internal";

#[test]
fn envoy_downstream_and_upstream_contexts_read_into_the_model() {
    let text = envoy(
        "",
        &format!(
            "{CERTS}\n            - certificate_chain: {{filename: /etc/other.pem}}\n              private_key: {{filename: /etc/other.key}}\n            alpn_protocols: [h2, http/1.1]\n            tls_params:\n              tls_minimum_protocol_version: TLSv1_2\n              tls_maximum_protocol_version: TLS_AUTO\n              cipher_suites: [\"[ECDHE-ECDSA-AES128-GCM-SHA256|ECDHE-ECDSA-CHACHA20-POLY1305]\", ECDHE-RSA-AES128-GCM-SHA256]"
        ),
        "        common_tls_context:\n          alpn_protocols: [h2]\n          validation_context: {trusted_ca: {filename: ca.pem}}",
    );
    let loaded = parse_str(&text, "/conf/envoy.yaml").unwrap();
    let listener = &loaded.config.listeners[0];
    let tls = listener.tls.as_ref().unwrap();
    assert_eq!(
        tls.certificates,
        [
            TlsCertificate {
                certificate_chain: DataSource::File(PathBuf::from("/conf/certs/server.pem")),
                private_key: DataSource::Inline(
                    "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".into()
                ),
            },
            TlsCertificate {
                certificate_chain: DataSource::File("/etc/other.pem".into()),
                private_key: DataSource::File("/etc/other.key".into()),
            },
        ]
    );
    assert_eq!(tls.alpn, ["h2", "http/1.1"]);
    assert_eq!(tls.min_version, Some(TlsVersion::V1_2));
    assert_eq!(tls.max_version, None, "TLS_AUTO is the default");
    assert_eq!(
        tls.cipher_suites,
        [
            "[ECDHE-ECDSA-AES128-GCM-SHA256|ECDHE-ECDSA-CHACHA20-POLY1305]",
            "ECDHE-RSA-AES128-GCM-SHA256"
        ]
    );
    // The data plane's errors point at these.
    let origin = loaded
        .sources
        .origin("listeners[0].tls.certificates[0].certificate_chain");
    assert_eq!(
        (origin.location.line, origin.location.column),
        (12, 34),
        "{origin:?}"
    );
    assert!(loaded.sources.get("listeners[0].tls.tls_params").is_some());

    let upstream = loaded.config.clusters[0].tls.as_ref().unwrap();
    assert_eq!(
        upstream.validation,
        UpstreamValidation::TrustedCa(DataSource::File("/conf/ca.pem".into()))
    );
    assert_eq!(upstream.alpn, ["h2"]);
    assert!(!upstream.verify_server_name, "Envoy checks the chain only");
    assert!(loaded.sources.get("clusters[0].tls.trusted_ca").is_some());
}

#[test]
fn envoy_upstream_without_trusted_ca_verifies_nothing_and_sends_sni_only_when_set() {
    let loaded = parse_str(
        &envoy("", CERTS, "        common_tls_context: {}"),
        "envoy.yaml",
    )
    .unwrap();
    let tls = loaded.config.clusters[0].tls.as_ref().unwrap();
    assert_eq!(tls.validation, UpstreamValidation::None);
    assert_eq!(tls.sni, None);
    assert!(!tls.sni_from_endpoint);
    assert!(
        loaded.warnings.iter().any(|w| w
            .message
            .contains("the upstream's certificate is not verified")),
        "{:?}",
        loaded.warnings
    );

    let loaded = parse_str(&envoy("", CERTS, UPSTREAM), "envoy.yaml").unwrap();
    let tls = loaded.config.clusters[0].tls.as_ref().unwrap();
    assert_eq!(tls.sni.as_deref(), Some("backend.internal"));
}

#[test]
fn envoy_unsupported_downstream_fields_are_errors_with_their_place() {
    let message = error(
        &envoy(
            "          require_client_certificate: true\n",
            CERTS,
            UPSTREAM,
        ),
        "envoy.yaml",
    );
    assert!(
        message.starts_with("envoy.yaml:10:11: static_resources.listeners[0].filter_chains[0].transport_socket.typed_config.require_client_certificate: unknown or unsupported field `require_client_certificate`"),
        "{message}"
    );
    let message = error(
        &envoy(
            "",
            &format!(
                "{CERTS}\n            validation_context: {{trusted_ca: {{filename: ca.pem}}}}"
            ),
            UPSTREAM,
        ),
        "envoy.yaml",
    );
    assert!(
        message.contains("common_tls_context.validation_context: unknown or unsupported field `validation_context`"),
        "{message}"
    );
    let message = error(
        &envoy(
            "",
            &format!("{CERTS}\n            tls_params: {{ecdh_curves: [X25519]}}"),
            UPSTREAM,
        ),
        "envoy.yaml",
    );
    assert!(
        message.contains("tls_params.ecdh_curves: unknown or unsupported field `ecdh_curves`"),
        "{message}"
    );
}

#[test]
fn envoy_bad_tls_values_are_errors() {
    let message = error(
        &envoy("", "            alpn_protocols: [h2]", UPSTREAM),
        "envoy.yaml",
    );
    assert!(
        message.contains("needs at least one entry in `tls_certificates`"),
        "{message}"
    );
    let message = error(
        &envoy(
            "",
            &format!("{CERTS}\n            tls_params: {{tls_maximum_protocol_version: TLSv2}}"),
            UPSTREAM,
        ),
        "envoy.yaml",
    );
    assert!(
        message.contains(
            "unsupported value `TLSv2`; pwx supports: TLS_AUTO, TLSv1_0, TLSv1_1, TLSv1_2, TLSv1_3"
        ),
        "{message}"
    );
    let both = "            tls_certificates:\n            - certificate_chain: {filename: a.pem, inline_string: x}\n              private_key: {filename: a.key}";
    let message = error(&envoy("", both, UPSTREAM), "envoy.yaml");
    assert!(
        message.contains("only one of `filename`, `inline_string` may be set"),
        "{message}"
    );
    let bytes = "            tls_certificates:\n            - certificate_chain: {inline_bytes: eA==}\n              private_key: {filename: a.key}";
    let message = error(&envoy("", bytes, UPSTREAM), "envoy.yaml");
    assert!(
        message.contains("unknown or unsupported field `inline_bytes`"),
        "{message}"
    );
    let message = error(
        &envoy(
            "",
            CERTS,
            "        common_tls_context: {validation_context: {match_typed_subject_alt_names: []}}",
        ),
        "envoy.yaml",
    );
    assert!(
        message.contains("unknown or unsupported field `match_typed_subject_alt_names`"),
        "{message}"
    );
}

fn pwx(listener_tls: &str, cluster_tls: &str) -> String {
    format!(
        "listeners:\n  - name: main\n    address: 127.0.0.1:10443\n    tls:\n{listener_tls}    routes:\n      - {{cluster: backend}}\nclusters:\n  - name: backend\n    endpoints: [localhost:8443]\n    tls: {cluster_tls}\n"
    )
}

#[test]
fn pwx_listener_and_cluster_tls_with_their_defaults() {
    let text = pwx(
        "      certificates: [{cert_file: s.pem, key_file: s.key}]\n",
        "{}",
    );
    let loaded = parse_str(&text, "/conf/pwx.yaml").unwrap();
    let tls = loaded.config.listeners[0].tls.as_ref().unwrap();
    assert_eq!(
        tls.certificates,
        [TlsCertificate {
            certificate_chain: DataSource::File("/conf/s.pem".into()),
            private_key: DataSource::File("/conf/s.key".into()),
        }]
    );
    assert_eq!(tls.alpn, ["h2", "http/1.1"], "pwx offers both by default");
    assert_eq!((tls.min_version, tls.max_version), (None, None));
    let origin = loaded
        .sources
        .origin("listeners[0].tls.certificates[0].private_key");
    assert_eq!(origin.location.line, 5);

    let cluster = loaded.config.clusters[0].tls.as_ref().unwrap();
    assert_eq!(cluster.validation, UpstreamValidation::SystemRoots);
    assert!(cluster.verify_server_name && cluster.sni_from_endpoint);

    let text = pwx(
        "      certificates: [{cert_file: s.pem, key_file: s.key}]\n      alpn: []\n      min_version: TLSv1_3\n      cipher_suites: [ECDHE-RSA-AES128-GCM-SHA256]\n",
        "{ca_file: ca.pem, sni: backend.internal}",
    );
    let loaded = parse_str(&text, "/conf/pwx.yaml").unwrap();
    let tls = loaded.config.listeners[0].tls.as_ref().unwrap();
    assert!(tls.alpn.is_empty());
    assert_eq!(tls.min_version, Some(TlsVersion::V1_3));
    assert_eq!(tls.cipher_suites, ["ECDHE-RSA-AES128-GCM-SHA256"]);
    let cluster = loaded.config.clusters[0].tls.as_ref().unwrap();
    assert_eq!(
        cluster.validation,
        UpstreamValidation::TrustedCa(DataSource::File("/conf/ca.pem".into()))
    );
}

#[test]
fn pwx_tls_errors_have_their_place() {
    let message = error(
        &pwx(
            "      certificates: [{cert: s.pem, key_file: s.key}]\n",
            "{}",
        ),
        "pwx.yaml",
    );
    assert!(
        message.starts_with(
            "pwx.yaml:5:23: listeners[0].tls.certificates[0].cert: unknown field `cert`"
        ),
        "{message}"
    );
    let message = error(
        &pwx(
            "      certificates: [{cert_file: s.pem, key_file: s.key}]\n      min_version: TLSv1_1\n",
            "{}",
        ),
        "pwx.yaml",
    );
    assert!(
        message.starts_with("pwx.yaml:6:20: listeners[0].tls.min_version: unknown variant `TLSv1_1`, expected `TLSv1_2` or `TLSv1_3`"),
        "{message}"
    );
    let message = error(&pwx("      alpn: [h2]\n", "{}"), "pwx.yaml");
    assert!(
        message.contains("listeners[0].tls: missing field `certificates`"),
        "{message}"
    );
}
