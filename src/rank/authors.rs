//! Followed authors: names as readers type them and papers print them,
//! reduced to a key that matches "Yann LeCun", "Y. LeCun" and "LeCun, Yann".

use super::text::for_each_token;

/// A followed-author lookup key: surname and first given name or initial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AuthorKey {
    pub(crate) surname: String,
    pub(crate) given: String,
}

impl AuthorKey {
    /// "Yann LeCun", "Y. LeCun" and "LeCun, Yann" give the same surname;
    /// the given name may be an initial.
    pub(crate) fn parse(name: &str) -> Option<AuthorKey> {
        let words = |s: &str| {
            let mut v = Vec::new();
            for_each_token(s, |t, _| v.push(t.to_string()));
            v
        };
        let (surname, given) = match name.split_once(',') {
            Some((last, first)) => (words(last).join(" "), words(first)),
            None => {
                let mut w = words(name);
                let last = w.pop()?;
                (last, w)
            }
        };
        if surname.is_empty() {
            return None;
        }
        Some(AuthorKey {
            surname,
            given: given.into_iter().next().unwrap_or_default(),
        })
    }

    pub(crate) fn matches(&self, other: &AuthorKey) -> bool {
        if self.surname != other.surname {
            return false;
        }
        let (a, b) = (&self.given, &other.given);
        if a.is_empty() || b.is_empty() {
            return true;
        }
        if a.chars().count() == 1 || b.chars().count() == 1 {
            return a.chars().next() == b.chars().next();
        }
        a == b
    }
}
