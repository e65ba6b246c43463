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

#[cfg(test)]
mod tests {
    use super::*;

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
