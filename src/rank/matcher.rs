//! Synonym phrases over analysed text: which concept a sequence of term
//! ids can be, found in documents (every match) and topics (longest
//! first), a homonym resolved by its context cues.

use super::synonyms::MAX_VARIANT_WORDS;
use std::collections::{HashMap, HashSet};

/// A token of an analysed field: position and term.
#[derive(Clone, Copy)]
pub(super) struct Tok {
    pub(super) pos: u32,
    pub(super) term: u32,
}

/// Which concepts a word sequence can be: a key of term ids.
pub(super) struct Matcher {
    pub(super) variants: HashMap<Vec<u32>, Vec<(u16, u16)>>,
    /// Longest variant starting with a term.
    pub(super) starts: HashMap<u32, usize>,
    /// Term id of each concept.
    pub(super) concept_term: Vec<u32>,
    /// Context cues per concept, as term ids.
    pub(super) context: Vec<Vec<Vec<u32>>>,
}

/// Calls `found(start, end, options)` for synonym phrases in `toks`:
/// every match at every start (`greedy` false, for documents), or the
/// longest match then skipping past it (`greedy` true, for topics).
/// Positions are token indices when `greedy`, word positions otherwise.
pub(super) fn for_each_concept(
    m: &Matcher,
    toks: &[Tok],
    greedy: bool,
    mut found: impl FnMut(u32, u32, &[(u16, u16)]),
) {
    let mut key: Vec<u32> = Vec::with_capacity(MAX_VARIANT_WORDS);
    let mut i = 0;
    while i < toks.len() {
        let Some(&max) = m.starts.get(&toks[i].term) else {
            i += 1;
            continue;
        };
        key.clear();
        let mut best: Option<(usize, &[(u16, u16)])> = None;
        for j in i..toks.len().min(i + max) {
            if j > i && toks[j].pos != toks[j - 1].pos + 1 {
                break;
            }
            key.push(toks[j].term);
            if let Some(opts) = m.variants.get(key.as_slice()) {
                if greedy {
                    best = Some((j, opts));
                } else {
                    found(toks[i].pos, toks[j].pos, opts);
                }
            }
        }
        match best {
            Some((j, opts)) => {
                found(i as u32, j as u32, opts);
                i = j + 1;
            }
            None => i += 1,
        }
    }
}

/// Picks the concept a (possibly ambiguous) phrase means in a text with
/// the given terms: the most context cues present, ties and no cues to
/// the concept listed first.
pub(super) fn resolve(
    m: &Matcher,
    options: &[(u16, u16)],
    text_terms: &HashSet<u32>,
) -> (u16, u16) {
    if options.len() == 1 {
        return options[0];
    }
    let cues = |ci: u16| {
        m.context[ci as usize]
            .iter()
            .filter(|cue| cue.iter().all(|t| text_terms.contains(t)))
            .count()
    };
    let mut best = options[0];
    let mut best_n = cues(best.0);
    for &o in &options[1..] {
        let n = cues(o.0);
        if n > best_n || (n == best_n && o.0 < best.0) {
            best = o;
            best_n = n;
        }
    }
    best
}
