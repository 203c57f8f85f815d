//! Header maps as the host keeps them: ordered (key, value) pairs with lower-case keys,
//! pseudo-headers first, repeated keys allowed.

/// An ordered header map. Keys are stored lower-case, as Envoy does on every read and write.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderMap {
    entries: Vec<(Vec<u8>, Vec<u8>)>,
}

fn lower(key: &[u8]) -> Vec<u8> {
    key.to_ascii_lowercase()
}

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

    /// Number of entries (pseudo-headers included).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the map has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries in order.
    pub fn entries(&self) -> &[(Vec<u8>, Vec<u8>)] {
        &self.entries
    }

    /// Iterates over (key, value) as byte slices.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.entries
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_slice()))
    }

    /// The value of the first entry with `key`.
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        let key = lower(key);
        self.entries
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_slice())
    }

    /// The value of the first entry with `key`, as UTF-8 text.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key.as_bytes())
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Appends an entry even if the key exists. A pseudo-header is kept ahead of regular ones.
    pub fn add(&mut self, key: &[u8], value: &[u8]) {
        let key = lower(key);
        if key.starts_with(b":") {
            let at = self
                .entries
                .iter()
                .take_while(|(k, _)| k.starts_with(b":"))
                .count();
            self.entries.insert(at, (key, value.to_vec()));
        } else {
            self.entries.push((key, value.to_vec()));
        }
    }

    /// Overwrites the first entry with `key`, or adds one (later duplicates stay, as in Envoy).
    pub fn replace(&mut self, key: &[u8], value: &[u8]) {
        let lowered = lower(key);
        match self.entries.iter_mut().find(|(k, _)| *k == lowered) {
            Some(entry) => entry.1 = value.to_vec(),
            None => self.add(&lowered, value),
        }
    }

    /// Removes every entry with `key`.
    pub fn remove(&mut self, key: &[u8]) {
        let key = lower(key);
        self.entries.retain(|(k, _)| *k != key);
    }

    /// Replaces the whole map.
    pub fn set_all<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        &mut self,
        pairs: impl IntoIterator<Item = (K, V)>,
    ) {
        self.entries.clear();
        for (k, v) in pairs {
            self.add(k.as_ref(), v.as_ref());
        }
    }

    /// Sum of key and value lengths: what Envoy's `proxy_get_header_map_size` reports.
    pub fn byte_size(&self) -> usize {
        self.entries.iter().map(|(k, v)| k.len() + v.len()).sum()
    }

    /// The values of `key` joined with `,` (how Envoy's attribute maps present repeated headers).
    pub fn joined(&self, key: &[u8]) -> Option<Vec<u8>> {
        let key = lower(key);
        let mut values = self
            .entries
            .iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v.as_slice());
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
        assert_eq!(map.entries()[0].0, b":path");
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
