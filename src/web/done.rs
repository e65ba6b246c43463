//! The notice a settings page shows after a redirect (`?done=…`), shared
//! by the settings page and the reader-feedback actions that redirect to it.

/// What the page says after a redirect: `?done=…`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Done {
    Saved,
    Paused,
    Resumed,
    Removed,
    Followed,
    AuthorsFull,
    Liked,
    NotThis,
}

impl Done {
    const ALL: [Done; 8] = [
        Done::Saved,
        Done::Paused,
        Done::Resumed,
        Done::Removed,
        Done::Followed,
        Done::AuthorsFull,
        Done::Liked,
        Done::NotThis,
    ];

    pub(super) fn as_str(self) -> &'static str {
        match self {
            Done::Saved => "saved",
            Done::Paused => "paused",
            Done::Resumed => "resumed",
            Done::Removed => "removed",
            Done::Followed => "followed",
            Done::AuthorsFull => "authors-full",
            Done::Liked => "liked",
            Done::NotThis => "not-this",
        }
    }

    pub(super) fn parse(s: &str) -> Option<Done> {
        Done::ALL.into_iter().find(|d| d.as_str() == s)
    }

    /// Whether the notice goes on to say when the next digest comes.
    pub(super) fn tells_next_digest(self) -> bool {
        matches!(self, Done::Saved | Done::Resumed)
    }

    /// The notice; pausing has none, as the paused box says it.
    pub(super) fn notice(self) -> Option<&'static str> {
        match self {
            Done::Saved => Some("Your settings are saved."),
            Done::Paused => None,
            Done::Resumed => Some("Digests are on again."),
            Done::Removed => Some("Removed."),
            Done::Followed => Some("You now follow this author."),
            Done::AuthorsFull => Some("You follow as many authors as allowed."),
            Done::Liked => Some("Noted: papers like this one will rank higher."),
            Done::NotThis => Some("Noted: papers like this one will rank lower."),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_done_code_reads_back_as_itself() {
        for d in Done::ALL {
            assert_eq!(Done::parse(d.as_str()), Some(d));
        }
        assert_eq!(Done::parse("nonsense"), None);
    }
}
