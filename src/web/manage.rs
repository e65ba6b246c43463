//! The settings page (`/manage/{token}`): GET shows the preferences, the
//! reading list and the data controls; the POST carries one
//! [`ManageAction`]. Saving, pausing, resuming and the feedback buttons end
//! with a redirect back to the page (post/redirect/get) that names what
//! was done, so a reload never repeats it; a form with errors is shown
//! again, each message beside its field.

use super::done::Done;
use super::feedback::{self, FeedbackSettings};
use super::fields::{frequency_choices, Choice, ErrorLink, Errors, Field};
use super::forms::{field, opt_field, FormError};
use super::next_digest::next_digest_items;
use super::page::{
    bad_form, invalid_link, manage_subscriber, message, read_form, refuse_form_post, render,
    see_other, Layout, Result,
};
use super::preview::{PreviewView, SteerMode};
use super::steer;
use super::subscribe::{consent_hash, request_and_answer};
use super::topics::{topic_counts, TopicCount};
use super::when::{next_digest, NextDigestView};
use super::zones::{zone_choices, ZoneChoices};
use super::WebState;
use crate::app::App;
use crate::domain::{
    limits, parse_topics, split_lines, FieldError, PreferencesInput, SubscriberState, Token,
    NOTHING_TO_SEND,
};
use crate::rank::Profile;
use crate::store::subscribers::{
    ConsentInput, ConsentMethod, SubscribeRequest, Subscriber, SuppressionReason,
};
use crate::store::StoreError;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::collections::HashMap;
use std::net::SocketAddr;

/// What a POST to the settings page asks for (its `action` field).
enum ManageAction {
    /// The whole settings form.
    Save(Box<PreferencesInput>),
    /// The unsubscribe page's "edit your topics instead": topics only.
    SaveTopics(String),
    Pause,
    Resume,
    /// Remove the feedback on one paper (its stored id).
    ForgetFeedback(String),
    /// *Yes, like this* (`more`) or *Not this* (`not_for_me`) on a paper
    /// of the preview: `(paper, choice)` as sent.
    PreviewChoice(String, String),
    /// Follow one of the suggested authors.
    FollowAuthor(String),
    /// Back through double opt-in after unsubscribing.
    Resubscribe,
    Export,
    /// The first press of "Delete my data": asks to confirm.
    AskDelete,
    Delete,
}

impl ManageAction {
    fn parse(form: &HashMap<String, Vec<String>>) -> Option<ManageAction> {
        let text = |k: &str| field(form, k).to_string();
        Some(match field(form, "action") {
            "save" => ManageAction::Save(Box::new(PreferencesInput {
                topics: text("topics"),
                excluded: text("excluded"),
                authors: text("authors"),
                categories: text("categories"),
                digest_size: opt_field(form, "digest_size"),
                // `weekly:friday` from the page; `weekly` with `weekly_day`
                // from older pages and API clients.
                frequency: opt_field(form, "frequency"),
                weekly_day: opt_field(form, "weekly_day"),
                send_time: opt_field(form, "send_time"),
                time_zone: opt_field(form, "time_zone"),
                fallback_trending: field(form, "fallback_trending") == "on",
            })),
            "topics" => ManageAction::SaveTopics(text("topics")),
            "pause" => ManageAction::Pause,
            "resume" => ManageAction::Resume,
            "forget_feedback" => ManageAction::ForgetFeedback(text("paper")),
            "preview_choice" => ManageAction::PreviewChoice(text("paper"), text("choice")),
            "follow_author" => ManageAction::FollowAuthor(field(form, "author").trim().to_string()),
            "resubscribe" => ManageAction::Resubscribe,
            "export" => ManageAction::Export,
            "delete" => ManageAction::AskDelete,
            "delete_confirmed" => ManageAction::Delete,
            _ => return None,
        })
    }
}

/// The settings form's fields, in page order.
const FIELDS: &[&str] = &[
    "topics",
    "excluded",
    "authors",
    "categories",
    "digest_size",
    "frequency",
    "send_time",
    "time_zone",
];

#[derive(Serialize)]
struct SettingsForm {
    topics: Field,
    excluded: Field,
    authors: Field,
    categories: Field,
    digest_size: Field,
    frequency: Field,
    send_time: Field,
    time_zone: Field,
    fallback_trending: bool,
}

#[derive(Serialize)]
struct ManageView {
    email: String,
    state: &'static str,
    paused: bool,
    unsubscribed: bool,
    action_url: String,
    unsubscribe_url: String,
    form: SettingsForm,
    frequencies: Vec<Choice>,
    zones: ZoneChoices,
    errors: Vec<ErrorLink>,
    notice: Option<&'static str>,
    /// With the saved and resumed notices: when the next digest comes.
    next_digest: Option<NextDigestView>,
    /// The saved preferences would never get a digest (saved before the
    /// rule that asks for a topic, an author, a category or the trending
    /// papers).
    nothing_to_send: Option<&'static str>,
    /// The topics in the form as read, with what each found.
    topics: Vec<TopicCount>,
    /// The live preview of the next digest, with the reader's feedback.
    preview_url: String,
    /// The preview as ranked here, so it and its buttons work without
    /// script (the script refreshes it as the form is edited).
    preview: PreviewView,
    feedback: FeedbackSettings,
    /// Why nothing is sent, when the address is suppressed.
    suppression: Option<super::suppressed::SuppressionNotice>,
}

/// The frequency as the form's one control encodes it: `weekly:friday`.
fn frequency_value(input: &PreferencesInput) -> String {
    match (input.frequency.as_deref(), input.weekly_day.as_deref()) {
        (Some("weekly"), day) => format!("weekly:{}", day.unwrap_or("monday").to_ascii_lowercase()),
        (f, _) => f.unwrap_or_default().to_string(),
    }
}

fn settings_form(input: &PreferencesInput, errors: &Errors) -> SettingsForm {
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    SettingsForm {
        topics: errors.field("topics", input.topics.clone()),
        excluded: errors.field("excluded", input.excluded.clone()),
        authors: errors.field("authors", input.authors.clone()),
        categories: errors.field("categories", input.categories.replace('\n', ", ")),
        digest_size: errors.field("digest_size", opt(&input.digest_size)),
        frequency: errors.field("frequency", frequency_value(input)),
        send_time: errors.field("send_time", opt(&input.send_time)),
        time_zone: errors.field("time_zone", opt(&input.time_zone)),
        fallback_trending: input.fallback_trending,
    }
}

/// What the page says at its top: a notice after a redirect, and when
/// the next digest comes with the notices that call for it.
struct Notice {
    text: Option<&'static str>,
    next_digest: Option<NextDigestView>,
}

impl Notice {
    const NONE: Notice = Notice {
        text: None,
        next_digest: None,
    };
}

async fn manage_view(
    web: &WebState,
    status: StatusCode,
    token: &Token,
    sub: &Subscriber,
    input: &PreferencesInput,
    errors: &[FieldError],
    notice: Notice,
) -> Result<Response> {
    // The day of a weekly digest is part of the frequency control.
    let errors: Vec<FieldError> = errors
        .iter()
        .map(|e| FieldError {
            field: if e.field == "weekly_day" {
                "frequency"
            } else {
                e.field
            },
            message: e.message.clone(),
        })
        .collect();
    let e = Errors::new(&errors, FIELDS);
    let form = settings_form(input, &e);
    let unsubscribed = sub.state == SubscriberState::Unsubscribed;
    let suppression = web.store.subscriber_suppression(sub.id).await?;
    let view = ManageView {
        email: sub.email.as_str().to_string(),
        state: if suppression.is_some() {
            "suppressed"
        } else {
            sub.state.as_str()
        },
        paused: sub.state == SubscriberState::Paused,
        unsubscribed: sub.state == SubscriberState::Unsubscribed,
        action_url: web.links.manage_url(token),
        unsubscribe_url: web.links.unsubscribe_url(token),
        frequencies: frequency_choices(&form.frequency.value),
        zones: zone_choices(&form.time_zone.value, web.now()),
        topics: topic_counts(web, &typed_profile(input)).await,
        form,
        errors: e.summary(),
        notice: notice.text,
        next_digest: notice.next_digest,
        nothing_to_send: (errors.is_empty() && !sub.preferences.can_send())
            .then_some(NOTHING_TO_SEND),
        preview_url: feedback::manage_preview_url(web, token),
        preview: settings_preview(web, token, sub).await?,
        feedback: feedback::settings(web, sub).await?,
        suppression: suppression.map(|s| super::suppressed::notice(web, &s, unsubscribed)),
    };
    render(
        web,
        status,
        "manage",
        Layout::private(web, "Your settings"),
        &view,
    )
}

/// The settings page's preview of the next digest for the saved
/// preferences.
async fn settings_preview(web: &WebState, token: &Token, sub: &Subscriber) -> Result<PreviewView> {
    let prefs = &sub.preferences;
    let profile = Profile::from_preferences(prefs);
    let next = next_digest_items(web, sub, prefs.frequency, &profile).await?;
    Ok(PreviewView {
        shown: !profile.topics.is_empty() || !profile.authors.is_empty(),
        items: next.items,
        note: next.note,
        steer: SteerMode::Settings,
        steer_url: web.links.manage_url(token),
    })
}

/// The topics, excluded words and categories in the form, as the counts
/// beside the topics read them.
fn typed_profile(input: &PreferencesInput) -> Profile {
    let mut profile = Profile::topics(
        parse_topics(&input.topics)
            .into_iter()
            .take(limits::MAX_TOPICS),
    );
    profile.excluded = split_lines(&input.excluded);
    profile.categories = split_lines(&input.categories);
    profile
}

/// `GET /manage/{token}[?done=…]`.
pub(super) async fn manage_page(
    State(web): State<WebState>,
    Path(raw): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response> {
    let Some((token, sub)) = manage_subscriber(&web, &raw).await? else {
        return invalid_link(&web);
    };
    let done = q.get("done").and_then(|d| Done::parse(d));
    let notice = Notice {
        text: done.and_then(Done::notice),
        next_digest: match done {
            Some(d) if d.tells_next_digest() => next_digest(&web, &sub).await?,
            _ => None,
        },
    };
    let input = PreferencesInput::from_preferences(&sub.preferences);
    manage_view(&web, StatusCode::OK, &token, &sub, &input, &[], notice).await
}

/// Back to the settings page, saying what was done.
fn done(app: &App, token: &Token, what: Done) -> Response {
    see_other(&format!(
        "{}?done={}",
        app.links.manage_url(token),
        what.as_str()
    ))
}

/// `POST /manage/{token}` with an `action` (see [`ManageAction`]).
pub(super) async fn manage(
    State(web): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    body: Bytes,
) -> Result<Response> {
    if let Some(refused) = refuse_form_post(&web, peer, &headers) {
        return refused;
    }
    let Some((token, sub)) = manage_subscriber(&web, &raw).await? else {
        return invalid_link(&web);
    };
    let form = match read_form(&headers, &body) {
        Ok(f) => f,
        Err(e) => return bad_form(&web, e),
    };
    let Some(action) = ManageAction::parse(&form) else {
        return bad_form(&web, FormError::Malformed);
    };
    let now = web.now();
    match action {
        ManageAction::Save(input) => save(&web, &token, &sub, &input).await,
        ManageAction::SaveTopics(topics) => {
            let input = PreferencesInput {
                topics,
                ..PreferencesInput::from_preferences(&sub.preferences)
            };
            save(&web, &token, &sub, &input).await
        }
        ManageAction::Pause | ManageAction::Resume => {
            let pause = matches!(action, ManageAction::Pause);
            web.store.set_paused(sub.id, pause, now).await?;
            Ok(done(
                &web,
                &token,
                if pause { Done::Paused } else { Done::Resumed },
            ))
        }
        ManageAction::PreviewChoice(paper, choice) => {
            preview_choice(&web, &token, &sub, &headers, &paper, &choice).await
        }
        ManageAction::ForgetFeedback(paper) => match feedback::forget(&web, &sub, &paper).await? {
            Some(d) => Ok(done(&web, &token, d)),
            None => bad_form(&web, FormError::Malformed),
        },
        ManageAction::FollowAuthor(name) => match feedback::follow(&web, &sub, &name).await? {
            Some(d) => Ok(done(&web, &token, d)),
            None => bad_form(&web, FormError::Malformed),
        },
        ManageAction::Resubscribe => resubscribe(&web, &token, &sub).await,
        ManageAction::Export => export(&web, &sub).await,
        ManageAction::AskDelete => Ok(see_other(&delete_url(&web, &token))),
        ManageAction::Delete => {
            web.store
                .delete_subscriber(sub.id, SuppressionReason::Deleted, now)
                .await?;
            tracing::info!(subscriber = %sub.id, "subscriber deleted their data");
            Ok(see_other(&format!("{}deleted", web.links.home_url())))
        }
    }
}

/// *Yes, like this* / *Not this* on a preview paper: recorded as
/// feedback, then back to the page; a script asking for JSON gets what
/// the page would say instead, so the page is not reloaded.
async fn preview_choice(
    web: &WebState,
    token: &Token,
    sub: &Subscriber,
    headers: &HeaderMap,
    paper: &str,
    choice: &str,
) -> Result<Response> {
    let (paper, action) = match steer::settings_press(paper, choice) {
        Ok(Some(p)) => p,
        Ok(None) => return bad_form(web, FormError::Malformed),
        Err(e) => return steer::refused(web, &e),
    };
    match web.store.record_feedback(sub.id, &paper, action, web.now()).await {
        Ok(_) => {}
        Err(StoreError::NotFound) => {
            return message(
                web,
                StatusCode::NOT_FOUND,
                "That paper is not listed any more",
                &["Its listing has expired, so there is nothing to like or reject. Your settings are unchanged."],
                Some(("Back to your settings", web.links.manage_url(token))),
                true,
            )
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!(subscriber = %sub.id, paper = %paper, action = action.as_str(), "preview feedback");
    let d = if action.is_positive() {
        Done::Liked
    } else {
        Done::NotThis
    };
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    if wants_json {
        let body = serde_json::json!({ "done": d.as_str(), "notice": d.notice() });
        return Ok((
            StatusCode::OK,
            [(header::CACHE_CONTROL, "no-store")],
            axum::Json(body),
        )
            .into_response());
    }
    Ok(done(web, token, d))
}

/// Saves valid preferences and redirects; shows the form again, with
/// what was typed and each error beside its field, otherwise.
async fn save(
    web: &WebState,
    token: &Token,
    sub: &Subscriber,
    input: &PreferencesInput,
) -> Result<Response> {
    match input.validate(&sub.preferences) {
        Ok(prefs) => {
            web.store
                .update_preferences(sub.id, &prefs, web.now())
                .await?;
            tracing::info!(subscriber = %sub.id, "preferences saved");
            Ok(done(web, token, Done::Saved))
        }
        Err(errors) => {
            manage_view(
                web,
                StatusCode::UNPROCESSABLE_ENTITY,
                token,
                sub,
                input,
                &errors,
                Notice::NONE,
            )
            .await
        }
    }
}

/// Back through double opt-in, with the stored preferences, answered like
/// the subscribe form (a redirect to the page that says what happened to
/// the mail). Offered to an unsubscribed reader and to one suppressed for
/// a reason their own new opt-in lifts (the store refuses the others); for
/// anyone else it changes nothing and shows their settings.
async fn resubscribe(web: &WebState, token: &Token, sub: &Subscriber) -> Result<Response> {
    let suppressed = web.store.subscriber_suppression(sub.id).await?.is_some();
    if sub.state != SubscriberState::Unsubscribed && !suppressed {
        return Ok(see_other(&web.links.manage_url(token)));
    }
    let consent = ConsentInput {
        method: ConsentMethod::WebForm,
        source: format!("{}manage (resubscribe)", web.links.home_url()),
        consent_text_hash: consent_hash(),
        ip: None,
    };
    let request = SubscribeRequest {
        email: &sub.email,
        prefs: &sub.preferences,
        consent: &consent,
        choices: &[],
    };
    request_and_answer(web, request).await
}

/// Everything stored about the subscriber, as a JSON download.
async fn export(web: &WebState, sub: &Subscriber) -> Result<Response> {
    let export = web.store.export_subscriber(sub.id).await?;
    let body = serde_json::to_vec_pretty(&export).map_err(anyhow::Error::from)?;
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"paperboy-my-data.json\"",
            ),
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        body,
    )
        .into_response())
}

#[derive(Serialize)]
struct DeleteView {
    action_url: String,
    manage_url: String,
}

fn delete_url(app: &App, token: &Token) -> String {
    format!("{}/delete", app.links.manage_url(token))
}

/// `GET /deleted`: where deleting one's data ends (after the POST, so a
/// reload deletes nothing twice). It names no one: the link is gone.
pub(super) async fn deleted_page(State(web): State<WebState>) -> Result<Response> {
    message(
        &web,
        StatusCode::OK,
        "Your data is deleted",
        &["We removed your address and everything linked to it. You will receive no further mail from us."],
        Some(("Subscribe again", web.links.home_url())),
        true,
    )
}

/// `GET /manage/{token}/delete`: the confirmation step, where the first
/// press of "Delete my data" redirects. Deleting is a second POST, so a
/// stray click (or a link scanner) cannot wipe an account; "Cancel" leads
/// back.
pub(super) async fn delete_page(
    State(web): State<WebState>,
    Path(raw): Path<String>,
) -> Result<Response> {
    let Some((token, _)) = manage_subscriber(&web, &raw).await? else {
        return invalid_link(&web);
    };
    let url = web.links.manage_url(&token);
    let view = DeleteView {
        action_url: url.clone(),
        manage_url: url,
    };
    render(
        &web,
        StatusCode::OK,
        "delete",
        Layout::private(&web, "Delete your data?"),
        &view,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_action_is_not_parsed() {
        let form = |a: &str| HashMap::from([("action".to_string(), vec![a.to_string()])]);
        assert!(ManageAction::parse(&form("drop_tables")).is_none());
        assert!(matches!(
            ManageAction::parse(&form("delete")),
            Some(ManageAction::AskDelete)
        ));
        assert!(matches!(
            ManageAction::parse(&form("delete_confirmed")),
            Some(ManageAction::Delete)
        ));
    }

    #[test]
    fn a_weekly_frequency_is_one_value_in_the_form() {
        let input = PreferencesInput {
            frequency: Some("weekly".into()),
            weekly_day: Some("Friday".into()),
            ..Default::default()
        };
        assert_eq!(frequency_value(&input), "weekly:friday");
        let daily = PreferencesInput {
            frequency: Some("daily".into()),
            ..Default::default()
        };
        assert_eq!(frequency_value(&daily), "daily");
    }
}
