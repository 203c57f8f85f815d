//! Envoy's TLS transport sockets: `DownstreamTlsContext` on a filter chain and
//! `UpstreamTlsContext` on a cluster, with file or inline data sources.

use crate::envoy::any::type_of;
use crate::envoy::reader::{Ctx, Obj, origin, string};
use crate::error::ConfigError;
use crate::model::{
    DataSource, DownstreamTls, TlsCertificate, TlsVersion, UpstreamTls, UpstreamValidation,
};
use crate::yaml::{Node, Path};

const UPSTREAM_TLS: &str = "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext";
const DOWNSTREAM_TLS: &str = "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext";
const VERSIONS: &[&str] = &["TLS_AUTO", "TLSv1_0", "TLSv1_1", "TLSv1_2", "TLSv1_3"];

/// The `typed_config` of a `transport_socket`, checked to be of type `expected`.
fn typed_config<'a>(
    ctx: &mut Ctx,
    node: &'a Node,
    path: &Path,
    expected: &'static str,
) -> Result<(&'a Node, Path), ConfigError> {
    let socket = ctx.object(
        node,
        path,
        &["typed_config"],
        &[(
            "name",
            "the @type of typed_config selects the transport socket",
        )],
    )?;
    let (n, p) = socket.require("typed_config")?;
    type_of(&Obj::typed(n, &p)?, &[expected])?;
    Ok((n, p))
}

/// A listener filter chain's `transport_socket` (`model`: `listeners[i]`).
pub(crate) fn downstream(
    ctx: &mut Ctx,
    node: &Node,
    path: &Path,
    model: &str,
) -> Result<DownstreamTls, ConfigError> {
    let (n, p) = typed_config(ctx, node, path, DOWNSTREAM_TLS)?;
    let context = ctx.object(n, &p, &["@type", "common_tls_context"], &[])?;
    ctx.sources.insert(format!("{model}.tls"), context.origin());
    let (n, p) = context.require("common_tls_context")?;
    let common = ctx.object(
        n,
        &p,
        &["tls_certificates", "alpn_protocols", "tls_params"],
        &[],
    )?;
    let mut out = DownstreamTls::default();
    for (i, (n, p)) in common.list("tls_certificates")?.into_iter().enumerate() {
        out.certificates.push(certificate(
            ctx,
            n,
            &p,
            &format!("{model}.tls.certificates[{i}]"),
        )?);
    }
    if out.certificates.is_empty() {
        return Err(ConfigError::at(
            common.origin(),
            "a DownstreamTlsContext needs at least one entry in `tls_certificates`",
        )
        .with_hint("add `tls_certificates: [{certificate_chain: {filename: …}, private_key: {filename: …}}]`"));
    }
    out.alpn = strings(&common, "alpn_protocols")?;
    if let Some((n, p)) = common.get("tls_params") {
        let params = ctx.object(
            n,
            &p,
            &[
                "tls_minimum_protocol_version",
                "tls_maximum_protocol_version",
                "cipher_suites",
            ],
            &[],
        )?;
        ctx.sources
            .insert(format!("{model}.tls.tls_params"), params.origin());
        out.min_version = version(&params, "tls_minimum_protocol_version")?;
        out.max_version = version(&params, "tls_maximum_protocol_version")?;
        out.cipher_suites = strings(&params, "cipher_suites")?;
    }
    Ok(out)
}

/// A cluster's `transport_socket` (`model`: `clusters[c]`).
pub(crate) fn upstream(
    ctx: &mut Ctx,
    node: &Node,
    path: &Path,
    model: &str,
) -> Result<UpstreamTls, ConfigError> {
    let (n, p) = typed_config(ctx, node, path, UPSTREAM_TLS)?;
    let tls = ctx.object(n, &p, &["@type", "sni", "common_tls_context"], &[])?;
    ctx.sources.insert(format!("{model}.tls"), tls.origin());
    let mut out = UpstreamTls {
        sni: tls.string("sni")?,
        sni_from_endpoint: false,
        validation: UpstreamValidation::None,
        verify_server_name: false,
        alpn: Vec::new(),
        client_certificate: None,
    };
    let Some((n, p)) = tls.get("common_tls_context") else {
        warn_unverified(ctx, &tls);
        return Ok(out);
    };
    let common = ctx.object(
        n,
        &p,
        &["alpn_protocols", "validation_context", "tls_certificates"],
        &[],
    )?;
    out.alpn = strings(&common, "alpn_protocols")?;
    if let Some((n, p)) = common.get("validation_context") {
        let validation = ctx.object(n, &p, &["trusted_ca"], &[])?;
        if let Some((n, p)) = validation.get("trusted_ca") {
            out.validation = UpstreamValidation::TrustedCa(data_source(
                ctx,
                n,
                &p,
                &format!("{model}.tls.trusted_ca"),
            )?);
        }
    }
    if out.validation == UpstreamValidation::None {
        warn_unverified(ctx, &tls);
    }
    let certificates = common.list("tls_certificates")?;
    if let Some((n, p)) = certificates.get(1) {
        return Err(ConfigError::at(
            origin(n, p),
            "pwx supports one client certificate",
        ));
    }
    if let Some((n, p)) = certificates.first() {
        out.client_certificate = Some(certificate(
            ctx,
            n,
            p,
            &format!("{model}.tls.client_certificate"),
        )?);
    }
    Ok(out)
}

/// Envoy connects without checking the upstream's certificate when no CA is configured; pwx
/// does the same, and says so.
fn warn_unverified(ctx: &mut Ctx, tls: &Obj<'_>) {
    ctx.warnings.push(crate::error::Warning {
        origin: tls.origin(),
        message: "no `validation_context.trusted_ca`: as in Envoy, the upstream's certificate is not verified".into(),
    });
}

/// A `TlsCertificate`: chain and key, each a data source.
fn certificate(
    ctx: &mut Ctx,
    node: &Node,
    path: &Path,
    model: &str,
) -> Result<TlsCertificate, ConfigError> {
    let certificate = ctx.object(node, path, &["certificate_chain", "private_key"], &[])?;
    ctx.sources.insert(model.to_string(), certificate.origin());
    let (chain_node, chain_path) = certificate.require("certificate_chain")?;
    let (key_node, key_path) = certificate.require("private_key")?;
    Ok(TlsCertificate {
        certificate_chain: data_source(
            ctx,
            chain_node,
            &chain_path,
            &format!("{model}.certificate_chain"),
        )?,
        private_key: data_source(ctx, key_node, &key_path, &format!("{model}.private_key"))?,
    })
}

/// A `DataSource`: `filename` (relative to the configuration file) or `inline_string`.
fn data_source(
    ctx: &mut Ctx,
    node: &Node,
    path: &Path,
    model: &str,
) -> Result<DataSource, ConfigError> {
    let source = ctx.object(node, path, &["filename", "inline_string"], &[])?;
    ctx.sources.insert(model.to_string(), source.origin());
    match source.one_of(&["filename", "inline_string"])? {
        Some("filename") => Ok(DataSource::File(
            ctx.resolve_path(&source.require_string("filename")?),
        )),
        Some(_) => Ok(DataSource::Inline(source.require_string("inline_string")?)),
        None => Err(ConfigError::at(
            source.origin(),
            "the data source names no `filename` or `inline_string`",
        )),
    }
}

fn strings(obj: &Obj<'_>, key: &str) -> Result<Vec<String>, ConfigError> {
    obj.list(key)?
        .into_iter()
        .map(|(n, p)| string(n, &p))
        .collect()
}

fn version(obj: &Obj<'_>, key: &str) -> Result<Option<TlsVersion>, ConfigError> {
    Ok(match obj.enum_name(key, VERSIONS)?.as_deref() {
        Some("TLSv1_0") => Some(TlsVersion::V1_0),
        Some("TLSv1_1") => Some(TlsVersion::V1_1),
        Some("TLSv1_2") => Some(TlsVersion::V1_2),
        Some("TLSv1_3") => Some(TlsVersion::V1_3),
        _ => None,
    })
}
