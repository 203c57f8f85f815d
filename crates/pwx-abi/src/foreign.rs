//! Envoy's foreign functions: their names, and the protobuf messages some of them take as
//! arguments (decoded with a minimal wire-format reader: two small messages do not justify a
//! protobuf code generator in a dependency-free crate).

/// `compress`: zlib-compresses the argument (default level).
pub const COMPRESS: &str = "compress";
/// `uncompress`: inflates a zlib stream; bad data is `SerializationFailure`.
pub const UNCOMPRESS: &str = "uncompress";
/// `clear_route_cache`: makes the router choose the route again.
pub const CLEAR_ROUTE_CACHE: &str = "clear_route_cache";
/// `set_envoy_filter_state`: creates a filter-state object through a registered factory.
pub const SET_ENVOY_FILTER_STATE: &str = "set_envoy_filter_state";
/// `declare_property`: declares a typed property for `set_property`.
pub const DECLARE_PROPERTY: &str = "declare_property";

/// The filter-state keys whose factories pwx knows (Envoy registers many more; those that
/// mean something in pwx are listed here and in docs/compat.md).
pub const KNOWN_FILTER_STATE_KEYS: &[&str] = &["envoy.tcp_proxy.cluster"];

/// `SetEnvoyFilterStateArguments { string path = 1; string value = 2; LifeSpan span = 3; }`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SetEnvoyFilterStateArguments {
    /// The filter-state key (which factory creates the object).
    pub path: String,
    /// The serialized value the factory reads.
    pub value: String,
    /// Life span (0 filter chain, 1 request, 2 connection).
    pub span: u64,
}

/// `DeclarePropertyArguments { string name = 1; bool readonly = 2; WasmType type = 3;
/// bytes schema = 4; LifeSpan span = 5; }`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeclarePropertyArguments {
    /// Property name.
    pub name: String,
    /// Whether later writes are refused.
    pub readonly: bool,
    /// Value type (0 bytes, 1 string, 2 flatbuffers, 3 protobuf).
    pub value_type: u64,
    /// Schema (for flatbuffers / protobuf values).
    pub schema: Vec<u8>,
    /// Life span.
    pub span: u64,
}

/// The argument bytes are not the message they should be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Malformed;

/// One field of a protobuf message.
pub(crate) enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

pub(crate) fn varint(data: &mut &[u8]) -> Result<u64, Malformed> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = data.split_first().ok_or(Malformed)?;
        *data = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(Malformed)
}

/// Reads every (field number, value) of a message.
pub(crate) fn fields(mut data: &[u8]) -> Result<Vec<(u64, Field<'_>)>, Malformed> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let key = varint(&mut data)?;
        let (number, wire) = (key >> 3, key & 7);
        if number == 0 {
            return Err(Malformed);
        }
        let field = match wire {
            0 => Field::Varint(varint(&mut data)?),
            1 | 5 => {
                let width = if wire == 1 { 8 } else { 4 };
                data = data.get(width..).ok_or(Malformed)?;
                Field::Fixed
            }
            2 => {
                let len = usize::try_from(varint(&mut data)?).map_err(|_| Malformed)?;
                let bytes = data.get(..len).ok_or(Malformed)?;
                data = &data[len..];
                Field::Bytes(bytes)
            }
            _ => return Err(Malformed),
        };
        out.push((number, field));
    }
    Ok(out)
}

pub(crate) fn text(bytes: &[u8]) -> Result<String, Malformed> {
    String::from_utf8(bytes.to_vec()).map_err(|_| Malformed)
}

impl SetEnvoyFilterStateArguments {
    /// Decodes the message; unknown fields are skipped as protobuf requires.
    pub fn decode(data: &[u8]) -> Result<Self, Malformed> {
        let mut args = SetEnvoyFilterStateArguments::default();
        for (number, field) in fields(data)? {
            match (number, field) {
                (1, Field::Bytes(b)) => args.path = text(b)?,
                (2, Field::Bytes(b)) => args.value = text(b)?,
                (3, Field::Varint(v)) => args.span = v,
                (1..=3, _) => return Err(Malformed),
                _ => {}
            }
        }
        Ok(args)
    }
}

impl DeclarePropertyArguments {
    /// Decodes the message; unknown fields are skipped as protobuf requires.
    pub fn decode(data: &[u8]) -> Result<Self, Malformed> {
        let mut args = DeclarePropertyArguments::default();
        for (number, field) in fields(data)? {
            match (number, field) {
                (1, Field::Bytes(b)) => args.name = text(b)?,
                (2, Field::Varint(v)) => args.readonly = v != 0,
                (3, Field::Varint(v)) => args.value_type = v,
                (4, Field::Bytes(b)) => args.schema = b.to_vec(),
                (5, Field::Varint(v)) => args.span = v,
                (1..=5, _) => return Err(Malformed),
                _ => {}
            }
        }
        Ok(args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_set_envoy_filter_state() {
        let args = SetEnvoyFilterStateArguments::decode(&[
            0x0a, 3, b'n', b'o', b'p', 0x12, 1, b'x', 0x18, 1,
        ])
        .unwrap();
        assert_eq!(args.path, "nop");
        assert_eq!(args.value, "x");
        assert_eq!(args.span, 1);
    }

    #[test]
    fn garbage_is_malformed() {
        assert_eq!(
            SetEnvoyFilterStateArguments::decode(&[0xff]),
            Err(Malformed)
        );
        assert_eq!(DeclarePropertyArguments::decode(&[0xff; 4]), Err(Malformed));
        assert_eq!(
            DeclarePropertyArguments::decode(&[0x0a, 5, b'a']),
            Err(Malformed)
        );
    }

    #[test]
    fn empty_message_has_defaults() {
        assert_eq!(
            DeclarePropertyArguments::decode(&[]),
            Ok(DeclarePropertyArguments::default())
        );
    }
}
