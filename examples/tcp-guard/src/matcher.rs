//! Finds a pattern in a byte stream that arrives in pieces.

/// Looks for `pattern` across everything fed so far, keeping only the bytes a match that is
/// still in progress needs.
pub struct Matcher {
    pattern: Vec<u8>,
    /// The last `pattern.len() - 1` bytes seen: a match may start in them.
    tail: Vec<u8>,
}

impl Matcher {
    pub fn new(pattern: Vec<u8>) -> Self {
        Matcher {
            pattern,
            tail: Vec::new(),
        }
    }

    /// Feeds the next bytes; `true` once the pattern has appeared.
    pub fn feed(&mut self, data: &[u8]) -> bool {
        let mut window = std::mem::take(&mut self.tail);
        window.extend_from_slice(data);
        let found = window
            .windows(self.pattern.len())
            .any(|w| w == self.pattern.as_slice());
        let keep = self.pattern.len().saturating_sub(1).min(window.len());
        self.tail = window.split_off(window.len() - keep);
        found
    }
}

#[cfg(test)]
mod tests {
    use super::Matcher;

    #[test]
    fn finds_a_pattern_split_across_pieces() {
        let mut m = Matcher::new(b"DROP TABLE".to_vec());
        assert!(!m.feed(b"select 1; DROP"));
        assert!(!m.feed(b" TAB"));
        assert!(m.feed(b"LE users"));
    }

    #[test]
    fn ignores_near_misses() {
        let mut m = Matcher::new(b"abc".to_vec());
        assert!(!m.feed(b"ab"));
        assert!(!m.feed(b"xc"));
        assert!(!m.feed(b"abxabd"));
        assert!(m.feed(b"zabc"));
    }
}
