//! The Console Connect API key, kept out of every log line and error message.

use std::fmt;

/// A Console Connect API key.
///
/// `Debug` and `Display` print `<redacted>` and there is deliberately no `Serialize`, so the key
/// cannot leak through logs, status conditions or events by accident. Read it with
/// [`ApiKey::expose`] only where it is put on the wire.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key. Surrounding whitespace is dropped because keys read from Kubernetes Secrets
    /// or files often end with a newline, which is not allowed in an HTTP header.
    pub fn new(key: impl Into<String>) -> Self {
        let key = key.into();
        let trimmed = key.trim();
        if trimmed.len() == key.len() {
            ApiKey(key)
        } else {
            ApiKey(trimmed.to_owned())
        }
    }

    /// The key itself, for the `Authorization` header and nothing else.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_the_key() {
        let key = ApiKey::new("s3cr3t-key");
        assert_eq!(format!("{key:?}"), "<redacted>");
        assert_eq!(format!("{key}"), "<redacted>");
        assert_eq!(format!("{:#?}", Some(&key)), "Some(\n    <redacted>,\n)");
        assert_eq!(key.expose(), "s3cr3t-key");
    }

    #[test]
    fn trims_surrounding_whitespace() {
        assert_eq!(ApiKey::new("abc\n").expose(), "abc");
        assert_eq!(ApiKey::new(" abc ").expose(), "abc");
        assert_eq!(ApiKey::new("abc"), ApiKey::new("abc\r\n"));
        assert!(ApiKey::new("  ").is_empty());
    }
}
