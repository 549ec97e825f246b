//! The query strings of internal URLs. Every value the protocol puts in a
//! query is a number or a socket tag (lowercase hex with a one-letter kind),
//! so nothing needs escaping; values that would are refused when written, so
//! the reader can split on `&` and `=` and be right.

use super::ProtocolError;

/// Builds a query string.
#[derive(Debug, Default)]
pub struct Query(String);

impl Query {
    pub fn new() -> Self {
        Query::default()
    }

    /// Adds `name=value`. Panics on a value with a character that would need
    /// escaping: the protocol's values never have one, so that is a bug.
    pub fn pair(mut self, name: &str, value: &str) -> Self {
        assert!(
            value.bytes().all(is_plain),
            "internal query value needs escaping: {value:?}"
        );
        self.sep();
        self.0.push_str(name);
        self.0.push('=');
        self.0.push_str(value);
        self
    }

    /// Adds a name without a value (a flag).
    pub fn flag(mut self, name: &str) -> Self {
        self.sep();
        self.0.push_str(name);
        self
    }

    pub fn finish(self) -> String {
        self.0
    }

    fn sep(&mut self) {
        if !self.0.is_empty() {
            self.0.push('&');
        }
    }
}

fn is_plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':')
}

/// The pairs of a query written by [`Query`]; a flag has an empty value.
pub(super) fn pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
}

/// A decimal sequence number or count, digits only.
pub(super) fn number(name: &str, value: &str) -> Result<u64, ProtocolError> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ProtocolError::new(format!("{name} is not a number")));
    }
    value
        .parse()
        .map_err(|_| ProtocolError::new(format!("{name} is out of range")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_round_trip() {
        let query = Query::new()
            .pair("after", "12")
            .flag("frames")
            .pair("tag", "u:0af3")
            .finish();
        assert_eq!(query, "after=12&frames&tag=u:0af3");
        assert_eq!(
            pairs(&query).collect::<Vec<_>>(),
            [("after", "12"), ("frames", ""), ("tag", "u:0af3")]
        );
        assert_eq!(pairs("").count(), 0);
    }

    #[test]
    #[should_panic(expected = "needs escaping")]
    fn values_that_need_escaping_are_a_bug() {
        Query::new().pair("tag", "a&b");
    }

    #[test]
    fn numbers_are_digits_only() {
        assert_eq!(number("n", "007"), Ok(7));
        for bad in ["", "+1", "-1", "1e3", "18446744073709551616"] {
            assert!(number("n", bad).is_err(), "{bad}");
        }
    }
}
