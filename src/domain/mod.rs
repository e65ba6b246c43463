//! Plain types shared by every module. No I/O happens here.

mod bounce;
mod email;
pub mod embedding;
mod feedback;
pub mod fetch;
mod paper;
mod storage;
mod subjects;
mod subscriber;
mod suppression;
mod taxonomy;
mod token;
mod window;
pub mod words;

pub use bounce::{BounceAction, BounceKind, ReportSource, SoftBouncePolicy};
pub use email::{hash_canonical, EmailAddress, EmailError, MAX_ADDRESS_LEN};
pub use feedback::{
    parse_choice_id, parse_choices, ChoiceError, FeedbackAction, FeedbackEntry, PreviewChoice,
    MAX_PREVIEW_CHOICES,
};
pub use paper::{
    normalize_whitespace, BadPaperId, Candidate, Paper, PaperId, SourceKind, UpvoteObservation,
};
pub use storage::{RetentionPolicy, Synchronous};
pub use subjects::{subject_covers, subject_name, subject_names, taxonomy};
pub use subscriber::{
    is_category, limits, parse_send_time, parse_time_zone, parse_topics, split_lines,
    split_lines_only, weekday_name, FieldError, Frequency, Preferences, PreferencesInput,
    SubscriberId, SubscriberState, Timing, NOTHING_TO_SEND,
};
pub use suppression::{Suppression, SuppressionReason};
pub use token::{Token, TokenPurpose, TOKEN_LEN};
pub use window::{next_digest_day, period_days, window, Span, Window, WindowLimits};
