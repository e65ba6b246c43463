//! Broad fields by meaning: a topic is mapped to the arXiv subjects it
//! means by the cosine of its vector to each subject's (name and
//! description, [`crate::domain::taxonomy`]), and the papers listed in
//! those subjects become candidates for it even when their words never
//! name the field ("neuroscience" finds a q-bio.NC paper about
//! synapses).
//!
//! Pure: the subject vectors are computed by the embedding side, once per
//! model, and handed in.

use crate::domain::embedding::dot;
use crate::domain::subject_covers;
use std::sync::Arc;

/// Unit vectors of the taxonomy's entries (subject classes and archives).
#[derive(Debug, Default)]
pub(crate) struct Subjects {
    pub(crate) codes: Vec<String>,
    pub(crate) vectors: Vec<Arc<[f32]>>,
}

/// A paper's standing in the subjects a topic maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Membership {
    None,
    /// Cross-listed to one of them.
    CrossListed,
    /// Its primary subject (the first listed) is one of them.
    Primary,
}

impl Membership {
    /// 0, 1 or 2: the weight of the membership in a score.
    pub(crate) fn weight(self) -> f32 {
        match self {
            Membership::None => 0.0,
            Membership::CrossListed => 1.0,
            Membership::Primary => 2.0,
        }
    }
}

impl Subjects {
    /// The entries a topic vector means, with the best cosine: those at
    /// least `floor` and within `margin` of the best entry. Empty when no
    /// entry reaches the floor (a topic narrower than any subject, or
    /// about none).
    pub(crate) fn mapped(&self, topic: &[f32], floor: f32, margin: f32) -> (Vec<&str>, f32) {
        let cos: Vec<f32> = self
            .vectors
            .iter()
            .map(|v| {
                if v.len() == topic.len() {
                    dot(topic, v)
                } else {
                    -1.0
                }
            })
            .collect();
        let best = cos.iter().copied().fold(-1.0f32, f32::max);
        if best < floor {
            return (Vec::new(), best);
        }
        let chosen = self
            .codes
            .iter()
            .zip(&cos)
            .filter(|(_, &c)| c >= floor && c >= best - margin)
            .map(|(code, _)| code.as_str())
            .collect();
        (chosen, best)
    }
}

/// Where a paper with `categories` (primary first) stands in `mapped`.
/// A paper without categories (a Hugging Face item before the arXiv
/// backfill) is in none: it is ranked by its text alone.
pub(crate) fn membership(categories: &[String], mapped: &[&str]) -> Membership {
    let covered = |c: &String| mapped.iter().any(|m| subject_covers(m, c));
    match categories.split_first() {
        Some((primary, _)) if covered(primary) => Membership::Primary,
        Some((_, rest)) if rest.iter().any(covered) => Membership::CrossListed,
        _ => Membership::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cats(c: &[&str]) -> Vec<String> {
        c.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_paper_is_primary_in_its_first_subject_and_cross_listed_in_the_others() {
        let mapped = ["q-bio.nc"];
        assert_eq!(
            membership(&cats(&["q-bio.NC", "cs.LG"]), &mapped),
            Membership::Primary
        );
        assert_eq!(
            membership(&cats(&["cs.LG", "q-bio.NC"]), &mapped),
            Membership::CrossListed
        );
        assert_eq!(membership(&cats(&["cs.LG"]), &mapped), Membership::None);
    }

    #[test]
    fn a_paper_without_subjects_is_in_no_field() {
        assert_eq!(membership(&[], &["cs", "econ"]), Membership::None);
    }

    #[test]
    fn a_topic_maps_to_the_subjects_near_its_best_and_to_none_below_the_floor() {
        let s = Subjects {
            codes: cats(&["econ", "q-fin.ec", "cs.ro"]),
            vectors: vec![
                Arc::from(vec![1.0, 0.0]),
                Arc::from(vec![0.8, 0.6]),
                Arc::from(vec![0.0, 1.0]),
            ],
        };
        let (m, best) = s.mapped(&[1.0, 0.0], 0.5, 0.25);
        assert_eq!((m, best), (vec!["econ", "q-fin.ec"], 1.0));
        let (m, _) = s.mapped(&[1.0, 0.0], 0.5, 0.1);
        assert_eq!(m, vec!["econ"]);
        let (m, _) = s.mapped(&[0.6, -0.8], 0.7, 0.1);
        assert!(m.is_empty());
    }
}
