//! Words of a text as ranking and the synonym data see them: lower-cased
//! alphanumeric tokens, with the stop words that carry no meaning.
//!
//! A token is a maximal run of alphanumeric characters, lower-cased, so
//! "chain-of-thought" is three tokens and "T2I" is one. Sentence
//! punctuation marks a gap, so a phrase never spans two sentences.

/// Words too common to carry meaning in a topic or a paper.
const STOP_WORDS: &[&str] = &[
    "a", "about", "all", "also", "an", "and", "any", "are", "as", "at", "be", "been", "being",
    "between", "both", "but", "by", "can", "could", "do", "does", "each", "for", "from", "had",
    "has", "have", "how", "however", "i", "if", "in", "into", "is", "it", "its", "may", "more",
    "most", "much", "must", "no", "not", "of", "on", "or", "other", "our", "over", "s", "same",
    "should", "so", "some", "such", "t", "than", "that", "the", "their", "them", "then", "there",
    "these", "they", "this", "those", "through", "thus", "to", "under", "up", "upon", "us", "use",
    "used", "using", "via", "was", "we", "were", "what", "when", "where", "whether", "which",
    "while", "who", "why", "will", "with", "within", "without", "would", "yet", "you", "your",
];

pub fn is_stop_word(w: &str) -> bool {
    STOP_WORDS.binary_search(&w).is_ok()
}

/// Calls `emit(token, gap)` for every lower-cased alphanumeric token of
/// `text`; `gap` is true when sentence punctuation separates it from the
/// previous token.
pub fn for_each_token(text: &str, mut emit: impl FnMut(&str, bool)) {
    let mut buf = String::new();
    let mut gap = false;
    for c in text.chars() {
        if c.is_alphanumeric() {
            if c.is_ascii() {
                buf.push(c.to_ascii_lowercase());
            } else {
                buf.extend(c.to_lowercase());
            }
        } else {
            if !buf.is_empty() {
                emit(&buf, gap);
                buf.clear();
                gap = false;
            }
            if matches!(
                c,
                '.' | ';' | ':' | '!' | '?' | '(' | ')' | '[' | ']' | '|' | '"'
            ) {
                gap = true;
            }
        }
    }
    if !buf.is_empty() {
        emit(&buf, gap);
    }
}

/// The words of `text` that carry meaning: its tokens without stop words.
pub fn content_words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for_each_token(text, |t, _| {
        if !is_stop_word(t) {
            out.push(t.to_string());
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stop_word_list_is_sorted_for_binary_search() {
        assert!(STOP_WORDS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn hyphens_split_words_and_punctuation_marks_a_gap() {
        let mut seen = Vec::new();
        for_each_token("Chain-of-Thought (CoT). T2I", |t, g| {
            seen.push((t.to_string(), g))
        });
        let want = [
            ("chain", false),
            ("of", false),
            ("thought", false),
            ("cot", true),
            ("t2i", true),
        ];
        let want: Vec<_> = want.iter().map(|(t, g)| (t.to_string(), *g)).collect();
        assert_eq!(seen, want);
    }
}
