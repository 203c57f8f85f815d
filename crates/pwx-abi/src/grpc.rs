//! gRPC callouts as Envoy numbers and names them: the `upstream` argument of `proxy_grpc_call`
//! and `proxy_grpc_stream` (a serialized `envoy.config.core.v3.GrpcService`, decoded with the
//! minimal wire-format reader of [`foreign`](crate::foreign)), callout token kinds, and the
//! HTTP-to-gRPC status mapping Envoy's gRPC client applies.

use crate::foreign::{Field, Malformed, fields, text};

/// What kind of callout a token names: its two low bits, as the C++ host allocates them
/// (HTTP calls 4, 8, …; gRPC calls 5, 9, …; gRPC streams 6, 10, …).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// `proxy_http_call` (low bits 0).
    HttpCall,
    /// `proxy_grpc_call` (low bits 1).
    GrpcCall,
    /// `proxy_grpc_stream` (low bits 2).
    GrpcStream,
    /// Low bits 3: no callout has such a token.
    None,
}

impl TokenKind {
    /// The kind of `token`.
    pub fn of(token: u32) -> TokenKind {
        match token & 3 {
            0 => TokenKind::HttpCall,
            1 => TokenKind::GrpcCall,
            2 => TokenKind::GrpcStream,
            _ => TokenKind::None,
        }
    }

    /// The first token of this kind (the C++ host starts each counter at the kind and adds 4
    /// before use).
    pub fn first(self) -> u32 {
        match self {
            TokenKind::HttpCall => 4,
            TokenKind::GrpcCall => 5,
            TokenKind::GrpcStream => 6,
            TokenKind::None => 7,
        }
    }
}

/// Where a `GrpcService` sends its calls (its `target_specifier` oneof).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum GrpcTarget {
    /// Neither target is set (Envoy cannot build a client for it).
    #[default]
    Unset,
    /// `envoy_grpc`: a cluster of this proxy, with an optional `:authority` override.
    EnvoyGrpc {
        /// `cluster_name`.
        cluster_name: String,
        /// `authority` (empty: the cluster name is the authority).
        authority: String,
    },
    /// `google_grpc`: Envoy's Google gRPC client, which pwx does not have.
    GoogleGrpc,
}

/// The parts of `envoy.config.core.v3.GrpcService` that decide how Envoy's wasm host sends a
/// gRPC callout. (Its `timeout` is not one of them: the callout's own `timeout_ms` is used.)
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GrpcService {
    /// Where the calls go.
    pub target: GrpcTarget,
    /// `initial_metadata`: headers added to every call (`value`, or `raw_value` when set).
    pub initial_metadata: Vec<(String, Vec<u8>)>,
}

/// Field numbers of `GrpcService`.
const ENVOY_GRPC: u64 = 1;
const GOOGLE_GRPC: u64 = 2;
const TIMEOUT: u64 = 3;
const INITIAL_METADATA: u64 = 5;
const RETRY_POLICY: u64 = 6;

impl GrpcService {
    /// Decodes a serialized `GrpcService` the way protobuf's parser accepts or refuses it:
    /// malformed wire data or a string field that is not UTF-8 (in the message or in the
    /// messages it contains) is [`Malformed`]; unknown fields, and known fields of another
    /// wire type, are skipped. Envoy treats bytes that do not parse as a cluster name.
    pub fn decode(data: &[u8]) -> Result<GrpcService, Malformed> {
        let mut service = GrpcService::default();
        for (number, field) in fields(data)? {
            let Field::Bytes(bytes) = field else { continue };
            match number {
                ENVOY_GRPC => service.target = envoy_grpc(bytes)?,
                GOOGLE_GRPC => {
                    fields(bytes)?;
                    service.target = GrpcTarget::GoogleGrpc;
                }
                TIMEOUT | RETRY_POLICY => {
                    fields(bytes)?;
                }
                INITIAL_METADATA => service.initial_metadata.push(header_value(bytes)?),
                _ => {}
            }
        }
        Ok(service)
    }
}

/// `EnvoyGrpc { string cluster_name = 1; string authority = 2; RetryPolicy retry_policy = 3;
/// UInt32Value max_receive_message_length = 4; bool skip_envoy_headers = 5; }`.
fn envoy_grpc(data: &[u8]) -> Result<GrpcTarget, Malformed> {
    let (mut cluster_name, mut authority) = (String::new(), String::new());
    for (number, field) in fields(data)? {
        match (number, field) {
            (1, Field::Bytes(b)) => cluster_name = text(b)?,
            (2, Field::Bytes(b)) => authority = text(b)?,
            (3 | 4, Field::Bytes(b)) => {
                fields(b)?;
            }
            _ => {}
        }
    }
    Ok(GrpcTarget::EnvoyGrpc {
        cluster_name,
        authority,
    })
}

/// `HeaderValue { string key = 1; string value = 2; bytes raw_value = 3; }`.
fn header_value(data: &[u8]) -> Result<(String, Vec<u8>), Malformed> {
    let (mut key, mut value, mut raw) = (String::new(), Vec::new(), None);
    for (number, field) in fields(data)? {
        match (number, field) {
            (1, Field::Bytes(b)) => key = text(b)?,
            (2, Field::Bytes(b)) => value = text(b)?.into_bytes(),
            (3, Field::Bytes(b)) => raw = Some(b.to_vec()),
            _ => {}
        }
    }
    Ok((key, raw.unwrap_or(value)))
}

/// Envoy's `Grpc::Utility::httpToGrpcStatus`: the gRPC status of a response whose HTTP status
/// is not 200 and that carries no `grpc-status` (the gRPC HTTP-status mapping).
pub fn http_to_grpc_status(http_status: u16) -> u32 {
    use crate::GrpcStatus;
    (match http_status {
        400 => GrpcStatus::Internal,
        401 => GrpcStatus::Unauthenticated,
        403 => GrpcStatus::PermissionDenied,
        404 => GrpcStatus::Unimplemented,
        429 | 502..=504 => GrpcStatus::Unavailable,
        _ => GrpcStatus::Unknown,
    }) as u32
}

/// Envoy's reading of a `grpc-status` header: a decimal number, or `u32::MAX` (Envoy's
/// `InvalidCode`, -1) when it is not one.
pub fn parse_grpc_status(value: &[u8]) -> u32 {
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_field(number: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![(number << 3) | 2, payload.len() as u8];
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn token_kinds_follow_the_low_bits() {
        assert_eq!(TokenKind::of(4), TokenKind::HttpCall);
        assert_eq!(TokenKind::of(5), TokenKind::GrpcCall);
        assert_eq!(TokenKind::of(6), TokenKind::GrpcStream);
        assert_eq!(TokenKind::of(7), TokenKind::None);
        assert_eq!(
            TokenKind::of(TokenKind::GrpcCall.first()),
            TokenKind::GrpcCall
        );
        assert_eq!(
            TokenKind::of(TokenKind::GrpcStream.first()),
            TokenKind::GrpcStream
        );
    }

    #[test]
    fn decodes_envoy_grpc_with_authority_and_metadata() {
        let mut envoy = bytes_field(1, b"backend");
        envoy.extend(bytes_field(2, b"api.example"));
        let mut data = bytes_field(1, &envoy);
        let mut header = bytes_field(1, b"x-key");
        header.extend(bytes_field(2, b"v"));
        data.extend(bytes_field(5, &header));
        let mut raw = bytes_field(1, b"x-raw");
        raw.extend(bytes_field(3, &[0xff, 0]));
        data.extend(bytes_field(5, &raw));
        data.extend(bytes_field(3, &[0x08, 5])); // timeout { seconds: 5 }
        data.extend([0x78, 1]); // unknown field 15, varint
        let service = GrpcService::decode(&data).unwrap();
        assert_eq!(
            service.target,
            GrpcTarget::EnvoyGrpc {
                cluster_name: "backend".into(),
                authority: "api.example".into()
            }
        );
        assert_eq!(
            service.initial_metadata,
            vec![
                ("x-key".to_string(), b"v".to_vec()),
                ("x-raw".to_string(), vec![0xff, 0])
            ]
        );
    }

    #[test]
    fn plain_cluster_names_do_not_parse() {
        for name in ["grpc", "upstream", "auth-cluster", "outbound|50051||svc"] {
            assert_eq!(
                GrpcService::decode(name.as_bytes()),
                Err(Malformed),
                "{name}"
            );
        }
    }

    #[test]
    fn nested_garbage_and_bad_utf8_are_malformed() {
        assert_eq!(
            GrpcService::decode(&bytes_field(1, &[0x0a, 5, b'a'])),
            Err(Malformed)
        );
        assert_eq!(
            GrpcService::decode(&bytes_field(1, &bytes_field(1, &[0xff]))),
            Err(Malformed)
        );
        assert_eq!(
            GrpcService::decode(&bytes_field(3, &[0xff])),
            Err(Malformed)
        );
    }

    #[test]
    fn an_empty_message_has_no_target() {
        assert_eq!(GrpcService::decode(&[]).unwrap().target, GrpcTarget::Unset);
        assert_eq!(
            GrpcService::decode(&bytes_field(2, &[])).unwrap().target,
            GrpcTarget::GoogleGrpc
        );
    }

    #[test]
    fn statuses_map_as_envoy_maps_them() {
        assert_eq!(http_to_grpc_status(503), 14);
        assert_eq!(http_to_grpc_status(504), 14);
        assert_eq!(http_to_grpc_status(404), 12);
        assert_eq!(http_to_grpc_status(500), 2);
        assert_eq!(parse_grpc_status(b"5"), 5);
        assert_eq!(parse_grpc_status(b"x"), u32::MAX);
    }
}
