//! A reader's feedback on one paper: the three links under each paper in
//! a digest.

use super::PaperId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What the reader said about a paper. Only the latest action per
/// (subscriber, paper) is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedbackAction {
    /// "More like this": similar papers rank higher.
    More,
    /// "Not for me": similar papers rank lower.
    NotForMe,
    /// "Save": kept on the reading list; counts as liked for ranking.
    Save,
}

impl FeedbackAction {
    pub const ALL: [FeedbackAction; 3] = [
        FeedbackAction::More,
        FeedbackAction::NotForMe,
        FeedbackAction::Save,
    ];

    /// The stored and linked form.
    pub fn as_str(self) -> &'static str {
        match self {
            FeedbackAction::More => "more",
            FeedbackAction::NotForMe => "not_for_me",
            FeedbackAction::Save => "save",
        }
    }

    pub fn parse(s: &str) -> Option<FeedbackAction> {
        FeedbackAction::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// The link text in a digest.
    pub fn label(self) -> &'static str {
        match self {
            FeedbackAction::More => "More like this",
            FeedbackAction::NotForMe => "Not for me",
            FeedbackAction::Save => "Save",
        }
    }

    /// Whether this action pulls similar papers up (else pushes down).
    pub fn is_positive(self) -> bool {
        !matches!(self, FeedbackAction::NotForMe)
    }

    /// "liked" / "saved" / "marked not for you", for reasons and pages.
    pub fn past_tense(self) -> &'static str {
        match self {
            FeedbackAction::More => "liked",
            FeedbackAction::NotForMe => "marked not for you",
            FeedbackAction::Save => "saved",
        }
    }
}

/// One stored piece of feedback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FeedbackEntry {
    pub paper: PaperId,
    pub action: FeedbackAction,
    /// When the reader last changed it.
    pub at: DateTime<Utc>,
}

/// Most *Yes, like this* / *Not this* choices one subscribe request
/// carries (and stores with the pending subscription).
pub const MAX_PREVIEW_CHOICES: usize = 20;

/// Longest paper id a choice may name (arXiv ids are under 20 characters;
/// namespaced ids of other sources stay well under this).
const MAX_CHOICE_ID_CHARS: usize = 64;

/// One *Yes, like this* / *Not this* pressed on a live preview.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviewChoice {
    pub paper: PaperId,
    /// `More` or `NotForMe`.
    pub action: FeedbackAction,
}

/// Why the choices sent with a form were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChoiceError {
    #[error("A paper choice could not be read: {0:?} is not a paper id.")]
    BadId(String),
    #[error("At most {MAX_PREVIEW_CHOICES} papers can be marked before subscribing.")]
    TooMany,
}

/// Reads a paper id sent back by a page: the stored form (arXiv ids, or
/// `source:id`), nothing else, so a hostile value never reaches a query
/// or a page.
pub fn parse_choice_id(raw: &str) -> Result<PaperId, ChoiceError> {
    let ok = !raw.is_empty()
        && raw.len() <= MAX_CHOICE_ID_CHARS
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:/-".contains(&b));
    if ok {
        Ok(PaperId::from_stored(raw.to_string()))
    } else {
        Err(ChoiceError::BadId(
            raw.chars().take(MAX_CHOICE_ID_CHARS).collect(),
        ))
    }
}

/// The choices of a form: every `like` and `not` value (a paper in both
/// counts as its last mention's kind, `not` after `like`), each id once,
/// at most [`MAX_PREVIEW_CHOICES`].
pub fn parse_choices(likes: &[String], nots: &[String]) -> Result<Vec<PreviewChoice>, ChoiceError> {
    let mut out: Vec<PreviewChoice> = Vec::new();
    let tagged = likes
        .iter()
        .map(|l| (l, FeedbackAction::More))
        .chain(nots.iter().map(|n| (n, FeedbackAction::NotForMe)));
    for (raw, action) in tagged {
        let paper = parse_choice_id(raw.trim())?;
        out.retain(|c| c.paper != paper);
        out.push(PreviewChoice { paper, action });
        if out.len() > MAX_PREVIEW_CHOICES {
            return Err(ChoiceError::TooMany);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preview_choices_keep_each_paper_once_and_refuse_hostile_ids() {
        let v = |xs: &[&str]| xs.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let c = parse_choices(
            &v(&["2606.00001", "hf:abc", "2606.00002"]),
            &v(&["2606.00002"]),
        )
        .unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(c[2].paper.as_str(), "2606.00002");
        assert_eq!(c[2].action, FeedbackAction::NotForMe);
        for bad in [
            "",
            "x'); DROP TABLE feedback;--",
            "<script>",
            &"9".repeat(65),
        ] {
            let r = parse_choices(&v(&[bad]), &[]);
            assert!(matches!(r, Err(ChoiceError::BadId(_))), "{bad:?}: {r:?}");
        }
        let many: Vec<String> = (0..=MAX_PREVIEW_CHOICES)
            .map(|i| format!("2606.{i:05}"))
            .collect();
        assert_eq!(parse_choices(&many, &[]), Err(ChoiceError::TooMany));
        assert_eq!(
            parse_choices(&many[..MAX_PREVIEW_CHOICES], &[])
                .unwrap()
                .len(),
            MAX_PREVIEW_CHOICES
        );
    }

    #[test]
    fn actions_round_trip_through_their_stored_form() {
        for a in FeedbackAction::ALL {
            assert_eq!(FeedbackAction::parse(a.as_str()), Some(a));
        }
        assert_eq!(FeedbackAction::parse("like"), None);
        assert!(!FeedbackAction::NotForMe.is_positive());
        assert!(FeedbackAction::Save.is_positive());
    }
}
