//! Checks on the model that need the whole configuration: names that must be unique, names
//! that must exist, the router's place, endpoints a cluster type can use. The same checks run
//! whichever format the file was in; errors point into the file through the `SourceMap`.

use crate::error::ConfigError;
use crate::model::{Config, Discovery, HttpFilter, ListenerKind, RouteAction, WasmPlugin};
use crate::source_map::SourceMap;
use std::collections::HashMap;
use std::net::IpAddr;

/// Checks `config`; `sources` gives positions for the messages.
pub fn validate(config: &Config, sources: &SourceMap) -> Result<(), ConfigError> {
    let at = |model_path: &str| sources.origin(model_path);

    let mut cluster_names: HashMap<&str, usize> = HashMap::new();
    for (c, cluster) in config.clusters.iter().enumerate() {
        let model = format!("clusters[{c}]");
        if let Some(first) = cluster_names.insert(&cluster.name, c) {
            return Err(ConfigError::at(
                at(&format!("{model}.name")),
                format!(
                    "duplicate cluster name `{}` (first defined at {})",
                    cluster.name,
                    at(&format!("clusters[{first}].name")).location
                ),
            ));
        }
        if cluster.endpoints.is_empty() {
            return Err(ConfigError::at(
                at(&format!("{model}.endpoints")),
                format!("cluster `{}` has no endpoints", cluster.name),
            )
            .with_hint("add at least one endpoint (host and port)"));
        }
        if cluster.connect_timeout.is_zero() {
            return Err(ConfigError::at(
                at(&model),
                format!(
                    "cluster `{}`: connect_timeout must be greater than 0",
                    cluster.name
                ),
            ));
        }
        match cluster.discovery {
            Discovery::Static => {
                for (e, endpoint) in cluster.endpoints.iter().enumerate() {
                    if endpoint.host.parse::<IpAddr>().is_err() {
                        return Err(ConfigError::at(
                            at(&format!("{model}.endpoints[{e}]")),
                            format!(
                                "`{}` is not an IP address, and cluster `{}` is STATIC",
                                endpoint.host, cluster.name
                            ),
                        )
                        .with_hint("use an IP address, or make the cluster STRICT_DNS (pwx YAML: discovery: strict_dns)"));
                    }
                }
            }
            Discovery::LogicalDns if cluster.endpoints.len() > 1 => {
                return Err(ConfigError::at(
                    at(&format!("{model}.endpoints[1]")),
                    format!(
                        "cluster `{}` is LOGICAL_DNS, which takes exactly one endpoint",
                        cluster.name
                    ),
                )
                .with_hint("use STRICT_DNS for several hosts"));
            }
            _ => {}
        }
    }
    let cluster_exists = |name: &str, model_path: &str| {
        if cluster_names.contains_key(name) {
            Ok(())
        } else {
            let known: Vec<&str> = config.clusters.iter().map(|c| c.name.as_str()).collect();
            Err(
                ConfigError::at(at(model_path), format!("unknown cluster `{name}`")).with_hint(
                    if known.is_empty() {
                        "no clusters are defined: add one under clusters".to_owned()
                    } else {
                        format!("defined clusters: {}", known.join(", "))
                    },
                ),
            )
        }
    };

    let mut listener_names: HashMap<&str, usize> = HashMap::new();
    let mut addresses = HashMap::new();
    for (l, listener) in config.listeners.iter().enumerate() {
        let model = format!("listeners[{l}]");
        if let Some(first) = listener_names.insert(&listener.name, l) {
            return Err(ConfigError::at(
                at(&format!("{model}.name")),
                format!(
                    "duplicate listener name `{}` (first defined at {})",
                    listener.name,
                    at(&format!("listeners[{first}].name")).location
                ),
            ));
        }
        // Port 0 asks for a fresh port each time: those never collide.
        if listener.address.port() != 0
            && let Some(first) = addresses.insert(listener.address, l)
        {
            return Err(ConfigError::at(
                at(&format!("{model}.address")),
                format!(
                    "listeners `{}` and `{}` both listen on {}",
                    config.listeners[first].name, listener.name, listener.address
                ),
            ));
        }
        match &listener.kind {
            ListenerKind::Tcp(tcp) => {
                cluster_exists(&tcp.cluster, &format!("{model}.cluster"))?;
                for (f, plugin) in tcp.network_filters.iter().enumerate() {
                    check_plugin(plugin, &format!("{model}.network_filters[{f}]"), sources)?;
                }
            }
            ListenerKind::Http(http) => {
                let mut domains: HashMap<&str, usize> = HashMap::new();
                for (v, host) in http.virtual_hosts.iter().enumerate() {
                    let vh_model = format!("{model}.virtual_hosts[{v}]");
                    for (d, domain) in host.domains.iter().enumerate() {
                        if domains.insert(domain, v).is_some() {
                            return Err(ConfigError::at(
                                at(&format!("{vh_model}.domains[{d}]")),
                                format!(
                                    "domain `{domain}` appears in more than one virtual host of listener `{}`",
                                    listener.name
                                ),
                            ));
                        }
                    }
                    for (r, route) in host.routes.iter().enumerate() {
                        if let RouteAction::Cluster(target) = &route.action {
                            cluster_exists(
                                &target.cluster,
                                &format!("{vh_model}.routes[{r}].cluster"),
                            )?;
                        }
                    }
                }
                let last = http.http_filters.len().saturating_sub(1);
                for (f, filter) in http.http_filters.iter().enumerate() {
                    let filter_model = format!("{model}.http_filters[{f}]");
                    match filter {
                        HttpFilter::Router(_) if f != last => {
                            return Err(ConfigError::at(
                                at(&filter_model),
                                "the router must be the last HTTP filter",
                            ));
                        }
                        HttpFilter::Wasm(plugin) => check_plugin(plugin, &filter_model, sources)?,
                        HttpFilter::Router(_) => {}
                    }
                }
                if !matches!(http.http_filters.last(), Some(HttpFilter::Router(_))) {
                    return Err(ConfigError::at(
                        at(&model),
                        format!(
                            "listener `{}`: the last HTTP filter must be the router",
                            listener.name
                        ),
                    ));
                }
            }
        }
    }
    for (s, service) in config.wasm_services.iter().enumerate() {
        check_plugin(&service.plugin, &format!("wasm_services[{s}]"), sources)?;
    }
    Ok(())
}

/// A plugin's environment: no name both passed from pwx's environment and set explicitly
/// (Envoy rejects that too).
fn check_plugin(plugin: &WasmPlugin, model: &str, sources: &SourceMap) -> Result<(), ConfigError> {
    for key in &plugin.vm.host_env_keys {
        if plugin.vm.environment.iter().any(|(name, _)| name == key) {
            return Err(ConfigError::at(
                sources.origin(&format!("{model}.vm.environment")),
                format!("`{key}` is both a host environment key and an explicit variable"),
            )
            .with_hint("keep one of the two"));
        }
    }
    Ok(())
}
