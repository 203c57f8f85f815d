//! Deterministic renderings of the values hostcalls return.

use serde_json::Value;

/// Renders bytes as a JSON string when they are UTF-8, else as `hex:<lowercase hex>`.
pub fn bytes(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => Value::String(s.to_string()).to_string(),
        Err(_) => hex(b),
    }
}

/// `hex:` followed by lowercase hex digits.
pub fn hex(b: &[u8]) -> String {
    let mut out = String::from("hex:");
    for x in b {
        out.push_str(&format!("{x:02x}"));
    }
    out
}

/// Decoded header pairs.
pub type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// Decodes the ABI pairs encoding (count, lengths, NUL-terminated data).
pub fn decode_pairs(b: &[u8]) -> Option<Pairs> {
    if b.is_empty() {
        return Some(Vec::new());
    }
    let word = |at: usize| -> Option<usize> {
        let s = b.get(at..at + 4)?;
        Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize)
    };
    let n = word(0)?;
    let mut lens = Vec::with_capacity(n);
    for i in 0..n {
        lens.push((word(4 + 8 * i)?, word(8 + 8 * i)?));
    }
    let mut at = 4 + 8 * n;
    let mut out = Vec::with_capacity(n);
    for (kl, vl) in lens {
        let k = b.get(at..at + kl)?.to_vec();
        at += kl;
        if b.get(at) != Some(&0) {
            return None;
        }
        at += 1;
        let v = b.get(at..at + vl)?.to_vec();
        at += vl;
        if b.get(at) != Some(&0) {
            return None;
        }
        at += 1;
        out.push((k, v));
    }
    (at == b.len()).then_some(out)
}

/// Encodes pairs in the ABI pairs encoding.
pub fn encode_pairs(pairs: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (k, v) in pairs {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k);
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
    out
}

/// Renders decoded pairs as `[["k","v"],...]` (each side through [`bytes`]).
pub fn pairs(p: &[(Vec<u8>, Vec<u8>)]) -> String {
    let items: Vec<String> = p
        .iter()
        .map(|(k, v)| format!("[{},{}]", bytes(k), bytes(v)))
        .collect();
    format!("[{}]", items.join(","))
}

/// Renders a returned value according to the op's `as` argument.
pub fn value_as(b: &[u8], how: &str) -> String {
    let fixed8 = |b: &[u8]| -> Option<[u8; 8]> { b.try_into().ok() };
    match how {
        "hex" => hex(b),
        "len" => format!("len={}", b.len()),
        "present" => "present".to_string(),
        "i64" => fixed8(b).map_or_else(|| hex(b), |a| i64::from_le_bytes(a).to_string()),
        "u64" => fixed8(b).map_or_else(|| hex(b), |a| u64::from_le_bytes(a).to_string()),
        "f64" => fixed8(b).map_or_else(|| hex(b), |a| f64::from_le_bytes(a).to_string()),
        "bool" => match b {
            [0] => "false".to_string(),
            [1] => "true".to_string(),
            _ => hex(b),
        },
        "pairs" => decode_pairs(b).map_or_else(|| hex(b), |p| pairs(&p)),
        "pairs_sorted" => decode_pairs(b).map_or_else(
            || hex(b),
            |mut p| {
                p.sort();
                pairs(&p)
            },
        ),
        _ => bytes(b),
    }
}
