//! Form bodies, parsed strictly from bytes.
//!
//! axum's `Form` rejects multipart and reports non-UTF-8 input only as a
//! generic rejection; parsing here gives each failure a clear message and
//! never panics on hostile input.

use std::collections::HashMap;

/// Why a form body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    #[error("The form data is not valid UTF-8.")]
    NotUtf8,
    #[error("The form data is malformed.")]
    Malformed,
    #[error("Expected a form (application/x-www-form-urlencoded).")]
    WrongContentType,
}

/// Parses `application/x-www-form-urlencoded` into name → values.
/// Percent-decoded bytes must be UTF-8; anything else is refused rather
/// than silently replaced.
pub fn parse_urlencoded(body: &[u8]) -> Result<HashMap<String, Vec<String>>, FormError> {
    let text = std::str::from_utf8(body).map_err(|_| FormError::NotUtf8)?;
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = decode(k)?;
        let v = decode(v)?;
        out.entry(k).or_default().push(v);
    }
    Ok(out)
}

fn decode(s: &str) -> Result<String, FormError> {
    let plus = s.replace('+', " ");
    let bytes = percent_decode(plus.as_bytes())?;
    String::from_utf8(bytes).map_err(|_| FormError::NotUtf8)
}

fn percent_decode(s: &[u8]) -> Result<Vec<u8>, FormError> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or(FormError::Malformed)?;
            let hex = std::str::from_utf8(hex).map_err(|_| FormError::Malformed)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| FormError::Malformed)?);
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// The first value of a field, or "".
pub(crate) fn field<'a>(form: &'a HashMap<String, Vec<String>>, name: &str) -> &'a str {
    form.get(name)
        .and_then(|v| v.first())
        .map(String::as_str)
        .unwrap_or("")
}

pub(crate) fn opt_field(form: &HashMap<String, Vec<String>>, name: &str) -> Option<String> {
    form.get(name).and_then(|v| v.first()).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urlencoded_forms_decode_plus_and_percent() {
        let f = parse_urlencoded(b"email=a%40b.org&topics=RAG%0Aspeculative+decoding&x").unwrap();
        assert_eq!(field(&f, "email"), "a@b.org");
        assert_eq!(field(&f, "topics"), "RAG\nspeculative decoding");
        assert_eq!(field(&f, "x"), "");
        assert_eq!(field(&f, "missing"), "");
    }

    #[test]
    fn non_utf8_and_broken_escapes_are_refused() {
        assert_eq!(parse_urlencoded(b"email=%FF%FE"), Err(FormError::NotUtf8));
        assert_eq!(parse_urlencoded(b"email=\xff"), Err(FormError::NotUtf8));
        assert_eq!(parse_urlencoded(b"email=%G1"), Err(FormError::Malformed));
        assert_eq!(parse_urlencoded(b"email=%4"), Err(FormError::Malformed));
    }

    proptest::proptest! {
        #[test]
        fn parsing_arbitrary_bytes_never_panics(body in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = parse_urlencoded(&body);
        }
    }
}
