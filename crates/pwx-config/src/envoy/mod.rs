//! The Envoy front end: the subset of Envoy's v3 bootstrap that proxy-wasm users write. Every
//! object is read with an explicit list of supported fields and of accepted-but-ignored ones
//! (each with its reason); anything else is an error that names the field.

mod any;
mod cluster;
mod listener;
pub(crate) mod reader;
mod route;
mod tls;
mod wasm;

use crate::error::ConfigError;
use crate::model::{Admin, Config, Node as NodeIdentity, WasmService};
use crate::yaml::{Node, Path};
use reader::{Ctx, origin, string};
use std::net::{IpAddr, SocketAddr};

const WASM_SERVICE: &str = "envoy.extensions.wasm.v3.WasmService";

/// True when the document looks like an Envoy bootstrap.
pub(crate) fn is_envoy(root: &Node) -> bool {
    root.get("static_resources").is_some() || root.get("bootstrap_extensions").is_some()
}

/// Decodes a bootstrap.
pub(crate) fn decode(ctx: &mut Ctx, root: &Node) -> Result<Config, ConfigError> {
    let path = Path::root();
    let obj = ctx.object(
        root,
        &path,
        &["static_resources", "admin", "node", "bootstrap_extensions"],
        &[(
            "layered_runtime",
            "runtime layers tune Envoy internals; pwx has no runtime flags",
        )],
    )?;
    let mut config = Config::default();
    if let Some((n, p)) = obj.get("admin") {
        let admin = ctx.object(
            n,
            &p,
            &["address"],
            &[
                (
                    "access_log",
                    "pwx's admin endpoint does not write an access log",
                ),
                (
                    "access_log_path",
                    "pwx's admin endpoint does not write an access log",
                ),
                ("profile_path", "pwx has no CPU profiler"),
            ],
        )?;
        let (n, p) = admin.require("address")?;
        config.admin = Some(Admin {
            address: address(ctx, n, &p)?,
        });
    }
    if let Some((n, p)) = obj.get("node") {
        let node = ctx.object(n, &p, &["id", "cluster"], &[])?;
        config.node = NodeIdentity {
            id: node.string_or_empty("id")?,
            cluster: node.string_or_empty("cluster")?,
        };
    }
    if let Some((n, p)) = obj.get("static_resources") {
        let resources = ctx.object(n, &p, &["listeners", "clusters"], &[])?;
        for (i, (n, p)) in resources.list("listeners")?.into_iter().enumerate() {
            config.listeners.push(listener::listener(ctx, n, &p, i)?);
        }
        for (i, (n, p)) in resources.list("clusters")?.into_iter().enumerate() {
            config.clusters.push(cluster::cluster(ctx, n, &p, i)?);
        }
    }
    for (i, (n, p)) in obj.list("bootstrap_extensions")?.into_iter().enumerate() {
        config
            .wasm_services
            .push(bootstrap_extension(ctx, n, &p, i)?);
    }
    Ok(config)
}

fn bootstrap_extension(
    ctx: &mut Ctx,
    node: &Node,
    path: &Path,
    index: usize,
) -> Result<WasmService, ConfigError> {
    let model = format!("wasm_services[{index}]");
    let extension = ctx.object(
        node,
        path,
        &["typed_config"],
        &[("name", "the @type of typed_config selects the extension")],
    )?;
    ctx.sources.insert(model.clone(), extension.origin());
    let (n, p) = extension.require("typed_config")?;
    any::type_of(&reader::Obj::typed(n, &p)?, &[WASM_SERVICE])?;
    let service = ctx.object(n, &p, &["@type", "config", "singleton"], &[])?;
    let (config_node, config_path) = service.require("config")?;
    Ok(WasmService {
        plugin: wasm::plugin_config(ctx, config_node, &config_path, &model)?,
        singleton: service.bool("singleton")?.unwrap_or(false),
    })
}

/// `envoy.config.core.v3.Address` with a `socket_address` whose address is an IP literal
/// (listeners and admin; cluster endpoints, which may be host names, are read elsewhere).
pub(crate) fn address(ctx: &mut Ctx, node: &Node, path: &Path) -> Result<SocketAddr, ConfigError> {
    let address = ctx.object(node, path, &["socket_address"], &[])?;
    let (n, p) = address.require("socket_address").map_err(|e| {
        e.with_hint("pwx supports socket_address (no pipe or envoy_internal_address)")
    })?;
    socket_address(ctx, n, &p)
}

/// A `SocketAddress` as an IP address and port.
pub(crate) fn socket_address(
    ctx: &mut Ctx,
    node: &Node,
    path: &Path,
) -> Result<SocketAddr, ConfigError> {
    let socket = ctx.object(node, path, &["address", "port_value", "protocol"], &[])?;
    cluster::check_tcp(&socket)?;
    let (n, p) = socket.require("address")?;
    let text = string(n, &p)?;
    let ip: IpAddr = text.parse().map_err(|_| {
        reader_error(
            n,
            &p,
            format!("`{text}` is not an IP address"),
            "listeners and the admin endpoint bind an IP address, e.g. 127.0.0.1, 0.0.0.0 or ::",
        )
    })?;
    let port = socket.uint("port_value", u64::from(u16::MAX))?.unwrap_or(0) as u16;
    Ok(SocketAddr::new(ip, port))
}

fn reader_error(node: &Node, path: &Path, message: String, hint: &str) -> ConfigError {
    ConfigError::at(origin(node, path), message).with_hint(hint)
}
