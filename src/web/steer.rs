//! *Yes, like this* / *Not this* on each paper of the live previews.
//!
//! On the subscribe page the choices belong to a subscription that does
//! not exist yet: they travel in the subscribe form as `like` / `not`
//! fields, are stored with the pending subscription, and become feedback
//! when it is confirmed (`Store::confirm`). With script the buttons only
//! update those fields. Without script each button posts the whole form
//! to `POST /subscribe/steer` (`web::subscribe`), which answers with a redirect to the
//! subscribe page carrying the form as a sealed draft (`?d=…`, the
//! address never in clear in a URL), so a reload posts nothing.
//!
//! On the settings page the buttons are ordinary feedback: a POST to the
//! settings page (`preview_choice`), redirected back to it; with script
//! the same POST is sent by `fetch` and answered with JSON instead.

use super::page::{message, Result};
use super::receipt::{open_json, seal_json};
use crate::app::App;
use crate::domain::{
    parse_choice_id, parse_choices, ChoiceError, FeedbackAction, PaperId, PreviewChoice,
    MAX_PREVIEW_CHOICES,
};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

const DRAFT_LABEL: &str = "paperboy/subscribe-draft/v1";

/// How long a draft link shows what was typed (it holds the address).
const DRAFT_TTL: Duration = Duration::hours(1);

/// Longest sealed draft accepted (the form's fields are capped well
/// below this).
const MAX_DRAFT_CHARS: usize = 24 * 1024;

/// The subscribe form as typed, between a button press and the page that
/// shows it again (no-script path).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Draft {
    pub email: String,
    pub topics: String,
    pub send_time: String,
    pub time_zone: String,
    pub fallback_trending: bool,
    pub choices: Vec<PreviewChoice>,
    pub issued: DateTime<Utc>,
}

impl Draft {
    pub(super) fn seal(&self, app: &App) -> anyhow::Result<String> {
        seal_json(&app.links, DRAFT_LABEL, self)
    }

    /// The draft in `raw` if it was sealed here within [`DRAFT_TTL`].
    pub(super) fn open(app: &App, raw: &str, now: DateTime<Utc>) -> Option<Draft> {
        let d: Draft = open_json(&app.links, DRAFT_LABEL, raw, MAX_DRAFT_CHARS)?;
        let fresh = d.issued <= now + Duration::minutes(1) && now - d.issued <= DRAFT_TTL;
        fresh.then_some(d)
    }
}

/// The `like` and `not` fields of a form.
pub(super) fn form_choices(
    form: &HashMap<String, Vec<String>>,
) -> std::result::Result<Vec<PreviewChoice>, ChoiceError> {
    let all = |k: &str| form.get(k).cloned().unwrap_or_default();
    parse_choices(&all("like"), &all("not"))
}

/// A button's value: `more:<paper>` or `not_for_me:<paper>`.
pub(super) fn parse_press(v: &str) -> std::result::Result<Option<PreviewChoice>, ChoiceError> {
    let Some((action, id)) = v.split_once(':') else {
        return Ok(None);
    };
    let action = match FeedbackAction::parse(action) {
        Some(a @ (FeedbackAction::More | FeedbackAction::NotForMe)) => a,
        _ => return Ok(None),
    };
    Ok(Some(PreviewChoice {
        paper: parse_choice_id(id)?,
        action,
    }))
}

/// Pressing a button: the same choice again takes it back, the other one
/// replaces it; a new paper beyond the limit is refused.
pub(super) fn press(
    choices: &mut Vec<PreviewChoice>,
    pressed: PreviewChoice,
) -> std::result::Result<(), ChoiceError> {
    match choices.iter().position(|c| c.paper == pressed.paper) {
        Some(i) if choices[i].action == pressed.action => {
            choices.remove(i);
        }
        Some(i) => choices[i].action = pressed.action,
        None if choices.len() >= MAX_PREVIEW_CHOICES => return Err(ChoiceError::TooMany),
        None => choices.push(pressed),
    }
    Ok(())
}

/// The answer to choices that cannot be read: what was wrong, and the
/// way back.
pub(super) fn refused(app: &App, e: &ChoiceError) -> Result<Response> {
    message(
        app,
        StatusCode::UNPROCESSABLE_ENTITY,
        "That choice could not be read",
        &[&e.to_string()],
        Some(("Back to the subscribe page", app.links.home_url())),
        false,
    )
}

/// One hidden `like` / `not` field of the subscribe form.
#[derive(Debug, Serialize)]
pub(super) struct ChoiceField {
    name: &'static str,
    id: String,
}

pub(super) fn choice_fields(choices: &[PreviewChoice]) -> Vec<ChoiceField> {
    choices
        .iter()
        .map(|c| ChoiceField {
            name: if c.action.is_positive() {
                "like"
            } else {
                "not"
            },
            id: c.paper.as_str().to_string(),
        })
        .collect()
}

/// The choice on `paper`, if any.
pub(super) fn choice_on(choices: &[PreviewChoice], paper: &str) -> Option<FeedbackAction> {
    choices
        .iter()
        .find(|c| c.paper.as_str() == paper)
        .map(|c| c.action)
}

/// A settings-page press: the paper and the action, or why not.
pub(super) fn settings_press(
    paper: &str,
    choice: &str,
) -> std::result::Result<Option<(PaperId, FeedbackAction)>, ChoiceError> {
    let action = match choice {
        "more" => FeedbackAction::More,
        "not_for_me" => FeedbackAction::NotForMe,
        _ => return Ok(None),
    };
    Ok(Some((parse_choice_id(paper)?, action)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(id: &str, action: FeedbackAction) -> PreviewChoice {
        PreviewChoice {
            paper: PaperId::from_stored(id.to_string()),
            action,
        }
    }

    #[test]
    fn pressing_the_same_button_twice_takes_the_choice_back() {
        let mut choices = Vec::new();
        press(&mut choices, c("2606.00001", FeedbackAction::More)).unwrap();
        press(&mut choices, c("2606.00002", FeedbackAction::More)).unwrap();
        press(&mut choices, c("2606.00001", FeedbackAction::NotForMe)).unwrap();
        assert_eq!(
            choices,
            vec![
                c("2606.00001", FeedbackAction::NotForMe),
                c("2606.00002", FeedbackAction::More)
            ]
        );
        press(&mut choices, c("2606.00002", FeedbackAction::More)).unwrap();
        assert_eq!(choices, vec![c("2606.00001", FeedbackAction::NotForMe)]);
    }

    #[test]
    fn a_press_beyond_the_limit_is_refused_but_changing_one_is_not() {
        let mut choices: Vec<PreviewChoice> = (0..MAX_PREVIEW_CHOICES)
            .map(|i| c(&format!("2606.{i:05}"), FeedbackAction::More))
            .collect();
        assert_eq!(
            press(&mut choices, c("2606.99999", FeedbackAction::More)),
            Err(ChoiceError::TooMany)
        );
        press(&mut choices, c("2606.00000", FeedbackAction::NotForMe)).unwrap();
        assert_eq!(choices.len(), MAX_PREVIEW_CHOICES);
    }

    #[test]
    fn a_button_value_names_an_action_and_a_well_formed_paper() {
        assert_eq!(
            parse_press("more:2606.00001"),
            Ok(Some(c("2606.00001", FeedbackAction::More)))
        );
        assert_eq!(parse_press("save:2606.00001"), Ok(None));
        assert_eq!(parse_press("nonsense"), Ok(None));
        assert!(matches!(
            parse_press("not_for_me:<img src=x>"),
            Err(ChoiceError::BadId(_))
        ));
        assert!(matches!(
            settings_press("' OR 1=1 --", "more"),
            Err(ChoiceError::BadId(_))
        ));
        assert_eq!(settings_press("2606.00001", "maybe"), Ok(None));
    }
}
