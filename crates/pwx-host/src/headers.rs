//! Header maps as the host keeps them: ordered (key, value) pairs with lower-case keys,
//! pseudo-headers first, repeated keys allowed.
//!
//! A map is copy-on-write: cloning it (a snapshot a filter keeps after it continues, the final
//! maps every filter's `on_log` reads) shares the entries, and each name and value is shared
//! too, so the copy a filter's first write makes costs one allocation, not two per header.

use std::sync::Arc;

/// One header name or value: immutable, shared between the copies of a map.
pub type HeaderBytes = Arc<[u8]>;

/// An ordered header map. Keys are stored lower-case, as Envoy does on every read and write.
#[derive(Clone, Debug, Default)]
pub struct HeaderMap {
    /// `None` for an empty map that never had entries (no allocation for the many maps a
    /// stream never fills).
    entries: Option<Arc<Vec<(HeaderBytes, HeaderBytes)>>>,
}

fn lower(key: &[u8]) -> HeaderBytes {
    if key.iter().any(u8::is_ascii_uppercase) {
        key.to_ascii_lowercase().into()
    } else {
        key.into()
    }
}

/// Whether a stored (lower-case) key is `key` in any case.
fn same_key(stored: &[u8], key: &[u8]) -> bool {
    stored.eq_ignore_ascii_case(key)
}

impl PartialEq for HeaderMap {
    fn eq(&self, other: &Self) -> bool {
        self.entries() == other.entries()
    }
}

impl Eq for HeaderMap {}

impl HeaderMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a map from pairs (keys are lower-cased).
    pub fn from_pairs<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.add(k.as_ref(), v.as_ref());
        }
        map
    }

    /// The entries, for writing: unshared first (a shared map is copied, with room for a few
    /// more headers, since a write is usually an add).
    fn entries_mut(&mut self) -> &mut Vec<(HeaderBytes, HeaderBytes)> {
        let entries = self.entries.get_or_insert_with(Default::default);
        if Arc::get_mut(entries).is_none() {
            let mut copy = Vec::with_capacity(entries.len() + 4);
            copy.extend(entries.iter().cloned());
            *entries = Arc::new(copy);
        }
        Arc::make_mut(entries)
    }

    /// Number of entries (pseudo-headers included).
    pub fn len(&self) -> usize {
        self.entries().len()
    }

    /// Whether the map has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries().is_empty()
    }

    /// The entries in order.
    pub fn entries(&self) -> &[(HeaderBytes, HeaderBytes)] {
        self.entries.as_deref().map_or(&[], Vec::as_slice)
    }

    /// Iterates over (key, value) as byte slices.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.entries().iter().map(|(k, v)| (&**k, &**v))
    }

    /// The value of the first entry with `key`.
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.entries()
            .iter()
            .find(|(k, _)| same_key(k, key))
            .map(|(_, v)| &**v)
    }

    /// The value of the first entry with `key`, as UTF-8 text.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key.as_bytes())
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Appends an entry even if the key exists. A pseudo-header is kept ahead of regular ones.
    pub fn add(&mut self, key: &[u8], value: &[u8]) {
        let key = lower(key);
        let value = HeaderBytes::from(value);
        let entries = self.entries_mut();
        if key.starts_with(b":") {
            let at = entries
                .iter()
                .take_while(|(k, _)| k.starts_with(b":"))
                .count();
            entries.insert(at, (key, value));
        } else {
            entries.push((key, value));
        }
    }

    /// Overwrites the first entry with `key`, or adds one (later duplicates stay, as in Envoy).
    pub fn replace(&mut self, key: &[u8], value: &[u8]) {
        match self.entries().iter().position(|(k, _)| same_key(k, key)) {
            Some(at) => self.entries_mut()[at].1 = value.into(),
            None => self.add(key, value),
        }
    }

    /// Removes every entry with `key`.
    pub fn remove(&mut self, key: &[u8]) {
        if self.entries().iter().any(|(k, _)| same_key(k, key)) {
            self.entries_mut().retain(|(k, _)| !same_key(k, key));
        }
    }

    /// Replaces the whole map.
    pub fn set_all<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        &mut self,
        pairs: impl IntoIterator<Item = (K, V)>,
    ) {
        self.entries = None;
        for (k, v) in pairs {
            self.add(k.as_ref(), v.as_ref());
        }
    }

    /// Sum of key and value lengths: what Envoy's `proxy_get_header_map_size` reports.
    pub fn byte_size(&self) -> usize {
        self.entries().iter().map(|(k, v)| k.len() + v.len()).sum()
    }

    /// The values of `key` joined with `,` (how Envoy's attribute maps present repeated headers).
    pub fn joined(&self, key: &[u8]) -> Option<Vec<u8>> {
        let mut values = self
            .entries()
            .iter()
            .filter(|(k, _)| same_key(k, key))
            .map(|(_, v)| &**v);
        let first = values.next()?;
        let mut out = first.to_vec();
        for v in values {
            out.push(b',');
            out.extend_from_slice(v);
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envoy_map_semantics() {
        let mut map = HeaderMap::from_pairs([("X-A", "1"), ("x-a", "2"), (":path", "/")]);
        assert_eq!(&*map.entries()[0].0, b":path");
        assert_eq!(map.get(b"X-a"), Some(&b"1"[..]));
        map.replace(b"x-a", b"3");
        assert_eq!(map.joined(b"x-a"), Some(b"3,2".to_vec()));
        map.remove(b"X-A");
        assert_eq!(map.len(), 1);
        assert_eq!(map.byte_size(), ":path".len() + 1);
        map.replace(b"new", b"v");
        assert_eq!(map.get_str("new"), Some("v"));
    }
}
