//! Routing as Envoy's route table does it: the virtual host by `:authority` (exact, then
//! `*.suffix` / `prefix*` wildcards, longest first, then `*`), then the first route whose path
//! and header matchers all match. Routes are chosen after the request path of the filter
//! chain, from the headers the filters produced (Envoy clears its route cache when a Wasm
//! filter changes request headers, so the result is the same).

use pwx_host::HeaderMap;
use std::time::Duration;

/// A virtual host: the domains it serves and its routes, in order.
#[derive(Clone, Debug)]
pub struct VirtualHost {
    /// Name (`xds.virtual_host_name`).
    pub name: String,
    /// Domains: exact names, `*.suffix`, `prefix*`, or `*`; a `:port` suffix is matched too.
    pub domains: Vec<String>,
    /// Routes, first match wins.
    pub routes: Vec<Route>,
}

/// One route.
#[derive(Clone, Debug)]
pub struct Route {
    /// Name (`xds.route_name`).
    pub name: String,
    /// What the request must look like.
    pub matcher: RouteMatch,
    /// Where it goes.
    pub action: RouteAction,
}

/// A route's conditions.
#[derive(Clone, Debug)]
pub struct RouteMatch {
    /// The path condition.
    pub path: PathMatch,
    /// Header conditions, all of which must hold.
    pub headers: Vec<HeaderMatcher>,
    /// Whether the path comparison is case sensitive (Envoy's default: true).
    pub case_sensitive: bool,
}

/// The path condition (the query string is not part of the path).
#[derive(Clone, Debug)]
pub enum PathMatch {
    /// The path starts with this.
    Prefix(String),
    /// The path is exactly this.
    Path(String),
}

/// A header condition.
#[derive(Clone, Debug)]
pub struct HeaderMatcher {
    /// Header name (lower case).
    pub name: String,
    /// The comparison.
    pub matcher: HeaderMatch,
    /// Negates the result.
    pub invert: bool,
}

/// How a header value is compared.
#[derive(Clone, Debug)]
pub enum HeaderMatch {
    /// Equal.
    Exact(String),
    /// Starts with.
    Prefix(String),
    /// Ends with.
    Suffix(String),
    /// Contains.
    Contains(String),
    /// Present (`true`) or absent (`false`).
    Present(bool),
}

/// What a matched route does.
#[derive(Clone, Debug)]
pub enum RouteAction {
    /// Forward to a cluster.
    Cluster {
        /// Cluster name.
        cluster: String,
        /// Route timeout (`None`: none).
        timeout: Option<Duration>,
        /// Replaces the matched prefix of the path.
        prefix_rewrite: Option<String>,
        /// Replaces `:authority` (and so `host`) towards the upstream.
        host_rewrite: Option<String>,
    },
    /// Answer directly.
    DirectResponse {
        /// Status.
        status: u16,
        /// Body.
        body: Vec<u8>,
    },
}

impl RouteAction {
    /// Forward everything to `cluster` with Envoy's default route timeout (15 s).
    pub fn to_cluster(cluster: impl Into<String>) -> RouteAction {
        RouteAction::Cluster {
            cluster: cluster.into(),
            timeout: Some(Duration::from_secs(15)),
            prefix_rewrite: None,
            host_rewrite: None,
        }
    }
}

impl VirtualHost {
    /// One virtual host for every domain with one catch-all route.
    pub fn catch_all(action: RouteAction) -> VirtualHost {
        VirtualHost {
            name: "all".into(),
            domains: vec!["*".into()],
            routes: vec![Route {
                name: String::new(),
                matcher: RouteMatch {
                    path: PathMatch::Prefix("/".into()),
                    headers: Vec::new(),
                    case_sensitive: true,
                },
                action,
            }],
        }
    }
}

/// How well a domain pattern matches a host: exact beats longer wildcards beats shorter ones
/// beats `*`; `None` if it does not match.
fn domain_score(pattern: &str, host: &str) -> Option<(u8, usize)> {
    let pattern = pattern.to_ascii_lowercase();
    if pattern == host {
        return Some((3, pattern.len()));
    }
    if pattern == "*" {
        return Some((0, 0));
    }
    if let Some(suffix) = pattern.strip_prefix('*')
        && host.len() > suffix.len()
        && host.ends_with(suffix)
    {
        return Some((2, pattern.len()));
    }
    if let Some(prefix) = pattern.strip_suffix('*')
        && host.len() > prefix.len()
        && host.starts_with(prefix)
    {
        return Some((1, pattern.len()));
    }
    None
}

fn header_matches(matcher: &HeaderMatcher, headers: &HeaderMap) -> bool {
    let value = headers.joined(matcher.name.as_bytes());
    let text = value.as_deref().map(String::from_utf8_lossy);
    let result = match (&matcher.matcher, text.as_deref()) {
        (HeaderMatch::Present(want), value) => value.is_some() == *want,
        (_, None) => false,
        (HeaderMatch::Exact(v), Some(value)) => value == v,
        (HeaderMatch::Prefix(v), Some(value)) => value.starts_with(v.as_str()),
        (HeaderMatch::Suffix(v), Some(value)) => value.ends_with(v.as_str()),
        (HeaderMatch::Contains(v), Some(value)) => value.contains(v.as_str()),
    };
    result != matcher.invert
}

fn path_matches(matcher: &RouteMatch, path: &str) -> bool {
    let path = path.split(['?', '#']).next().unwrap_or("");
    let (path, wanted) = match &matcher.path {
        PathMatch::Prefix(p) | PathMatch::Path(p) if !matcher.case_sensitive => {
            (path.to_ascii_lowercase(), p.to_ascii_lowercase())
        }
        PathMatch::Prefix(p) | PathMatch::Path(p) => (path.to_string(), p.clone()),
    };
    match matcher.path {
        PathMatch::Prefix(_) => path.starts_with(&wanted),
        PathMatch::Path(_) => path == wanted,
    }
}

/// The route for a request, with its virtual host; `None` is Envoy's 404 `route_not_found`.
pub(crate) fn select<'a>(
    hosts: &'a [VirtualHost],
    headers: &HeaderMap,
) -> Option<(&'a VirtualHost, &'a Route)> {
    let authority = headers
        .get_str(":authority")
        .unwrap_or("")
        .to_ascii_lowercase();
    let host = authority.as_str();
    let bare = host.rsplit_once(':').map_or(host, |(h, _)| h);
    let best = hosts
        .iter()
        .filter_map(|vh| {
            vh.domains
                .iter()
                .filter_map(|d| domain_score(d, host).or_else(|| domain_score(d, bare)))
                .max()
                .map(|score| (score, vh))
        })
        .max_by_key(|(score, _)| *score)?
        .1;
    let path = headers.get_str(":path").unwrap_or("/");
    let route = best.routes.iter().find(|route| {
        path_matches(&route.matcher, path)
            && route
                .matcher
                .headers
                .iter()
                .all(|h| header_matches(h, headers))
    })?;
    Some((best, route))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(path: PathMatch, headers: Vec<HeaderMatcher>, cluster: &str) -> Route {
        Route {
            name: cluster.into(),
            matcher: RouteMatch {
                path,
                headers,
                case_sensitive: true,
            },
            action: RouteAction::to_cluster(cluster),
        }
    }

    fn picked(hosts: &[VirtualHost], authority: &str, path: &str) -> Option<String> {
        let headers = HeaderMap::from_pairs([(":authority", authority), (":path", path)]);
        select(hosts, &headers).map(|(vh, r)| format!("{}/{}", vh.name, r.name))
    }

    #[test]
    fn virtual_hosts_prefer_exact_then_longest_wildcard_then_star() {
        let any = vec![route(PathMatch::Prefix("/".into()), vec![], "r")];
        let host = |name: &str, domains: &[&str]| VirtualHost {
            name: name.into(),
            domains: domains.iter().map(|d| d.to_string()).collect(),
            routes: any.clone(),
        };
        let hosts = vec![
            host("star", &["*"]),
            host("wild", &["*.example.com"]),
            host("exact", &["api.example.com"]),
        ];
        assert_eq!(picked(&hosts, "api.example.com", "/").unwrap(), "exact/r");
        assert_eq!(
            picked(&hosts, "www.example.com:8080", "/").unwrap(),
            "wild/r"
        );
        assert_eq!(picked(&hosts, "other", "/").unwrap(), "star/r");
    }

    #[test]
    fn first_matching_route_wins_and_headers_must_match() {
        let hosts = vec![VirtualHost {
            name: "vh".into(),
            domains: vec!["*".into()],
            routes: vec![
                route(
                    PathMatch::Prefix("/api".into()),
                    vec![HeaderMatcher {
                        name: "x-env".into(),
                        matcher: HeaderMatch::Exact("canary".into()),
                        invert: false,
                    }],
                    "canary",
                ),
                route(PathMatch::Path("/api/exact".into()), vec![], "exact"),
                route(PathMatch::Prefix("/api".into()), vec![], "api"),
            ],
        }];
        assert_eq!(picked(&hosts, "h", "/api/exact?x=1").unwrap(), "vh/exact");
        assert_eq!(picked(&hosts, "h", "/api/other").unwrap(), "vh/api");
        assert_eq!(picked(&hosts, "h", "/nothing"), None);
        let canary = HeaderMap::from_pairs([
            (":authority", "h"),
            (":path", "/api/x"),
            ("x-env", "canary"),
        ]);
        assert_eq!(select(&hosts, &canary).unwrap().1.name, "canary");
    }
}
