//! *Yes, like this* / *Not this* on the live previews: on the subscribe
//! page the choices travel with the pending subscription and count from
//! the first digest once confirmed; on the settings page they are
//! ordinary feedback. Without script (plain posts, redirected) here; with
//! script in `browser`.

use crate::support::{extract_links, TestApp};
use chrono::{DateTime, Utc};
use paperboy::digest;
use paperboy::domain::{EmailAddress, FeedbackAction};
use reqwest::StatusCode;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

const TOPICS: &str = "LLM agents";

/// The public preview's paper ids for `topics`, best first.
async fn preview_ids(t: &TestApp, topics: &str) -> Vec<String> {
    let json: serde_json::Value = t
        .client
        .get(t.url("/preview"))
        .query(&[("topics", topics), ("format", "json")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    json["papers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect()
}

fn form(email: &str, extra: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    let mut f = vec![
        ("email", email.to_string()),
        ("topics", TOPICS.to_string()),
        ("send_time", "08:00".to_string()),
        ("time_zone", "UTC".to_string()),
    ];
    f.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    f
}

async fn post(t: &TestApp, path: &str, fields: &[(&str, String)]) -> reqwest::Response {
    t.client
        .post(t.url(path))
        .form(fields)
        .send()
        .await
        .unwrap()
}

/// Confirms the latest confirmation mail of `email` with its button.
async fn confirm(t: &TestApp, email: &str) {
    let link = t.confirmation_link(email, 1).await;
    let page = t.client.post(&link).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
}

async fn subscriber_id(t: &TestApp, email: &str) -> paperboy::domain::SubscriberId {
    t.app
        .store
        .subscriber_by_email(&EmailAddress::parse(email).unwrap())
        .await
        .unwrap()
        .unwrap()
        .id
}

fn text_of(m: &crate::support::Received) -> String {
    mail_parser::MessageParser::default()
        .parse(&m.data)
        .unwrap()
        .body_text(0)
        .unwrap()
        .into_owned()
}

#[tokio::test]
async fn likes_pressed_on_the_subscribe_preview_count_once_confirmed_so_the_first_digest_uses_them()
{
    let (t, clock) = TestApp::spawn_at(at("2026-06-12T07:00:00Z"), &[]).await;
    t.seed_hf_fixture().await;
    let ids = preview_ids(&t, TOPICS).await;
    assert!(
        ids.len() >= 2,
        "the fixture has papers on {TOPICS}: {ids:?}"
    );
    let liked = ids[1].clone();
    let rejected = ids[0].clone();

    // Without script: a button posts the whole form; the answer is a
    // redirect back to the page, which shows the form as typed, the
    // preview with the choice pressed and the choice as a hidden field.
    let fields = form(
        "steerer@example.org",
        &[("steer", &format!("more:{liked}"))],
    );
    let r = post(&t, "/subscribe/steer", &fields).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let to = r.headers()["location"].to_str().unwrap().to_string();
    assert!(!to.contains("steerer"), "the address is sealed: {to}");
    let page = t.follow(r).await.text().await.unwrap();
    assert!(page.contains("value=\"steerer@example.org\""), "{page}");
    assert!(page.contains(&format!("name=\"like\" value=\"{liked}\"")));
    let pressed = format!("value=\"more:{liked}\" class=\"secondary\" aria-pressed=\"true\"");
    assert!(page.contains(&pressed), "{page}");
    assert!(page.contains(&format!("value=\"not_for_me:{rejected}\"")));

    // The subscribe form carries the choices; nothing counts before the
    // address is confirmed.
    let email = "steerer@example.org";
    let fields = form(
        email,
        &[("like", &liked), ("not", &rejected), ("like", "2606.99999")],
    );
    let r = post(&t, "/subscribe", &fields).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let plain = "plain@example.org";
    assert_eq!(
        post(&t, "/subscribe", &form(plain, &[])).await.status(),
        StatusCode::SEE_OTHER
    );
    let id = subscriber_id(&t, email).await;
    assert!(t.app.store.feedback_of(id).await.unwrap().is_empty());

    clock.set(at("2026-06-12T07:10:00Z"));
    confirm(&t, email).await;
    confirm(&t, plain).await;
    let fb = t.app.store.feedback_of(id).await.unwrap();
    let got: Vec<(&str, FeedbackAction)> =
        fb.iter().map(|e| (e.paper.as_str(), e.action)).collect();
    assert_eq!(got.len(), 2, "the unknown paper is dropped: {got:?}");
    assert!(got.contains(&(liked.as_str(), FeedbackAction::More)));
    assert!(got.contains(&(rejected.as_str(), FeedbackAction::NotForMe)));

    // The first digest already ranks with them: same topics, different
    // digest, and the reason names the liked paper.
    let now = at("2026-06-12T08:00:30Z");
    clock.set(now);
    let picker = digest::RankPicker::for_run(&t.app, now).await.unwrap();
    let report = digest::run(&t.app, &picker, now).await.unwrap();
    assert_eq!(report.counts.sent, 2, "{report:?}");
    let steered = text_of(&t.sink.wait_for(email, 2).await[1]);
    let unsteered = text_of(&t.sink.wait_for(plain, 2).await[1]);
    assert!(steered.contains("which you liked"), "{steered}");
    assert!(!unsteered.contains("which you liked"), "{unsteered}");
    let paper_links = |s: &str| -> Vec<String> {
        extract_links(s)
            .into_iter()
            .filter(|l| l.starts_with("https://arxiv.org/abs/"))
            .collect()
    };
    assert_ne!(paper_links(&steered), paper_links(&unsteered));
    // The rejected paper (the topic's best) moves down or out.
    let rejected_link = format!("https://arxiv.org/abs/{rejected}");
    let pos = |s: &str| paper_links(s).iter().position(|l| *l == rejected_link);
    let before = pos(&unsteered).expect("the topic's best paper is sent without choices");
    assert!(pos(&steered).is_none_or(|p| p > before), "{steered}");
    t.stop().await;
}

#[tokio::test]
async fn hostile_or_too_many_preview_choices_are_refused_with_a_message_and_store_nothing() {
    let (t, _clock) = TestApp::spawn_at(at("2026-06-12T07:00:00Z"), &[]).await;
    t.seed_hf_fixture().await;
    let email = "hostile@example.org";
    let r = post(
        &t,
        "/subscribe",
        &form(email, &[("like", "<script>x</script>")]),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = r.text().await.unwrap();
    assert!(body.contains("A paper choice could not be read"), "{body}");
    assert!(!body.contains("<script>x"), "the value is never echoed raw");

    let many: Vec<(&'static str, String)> = (0..21)
        .map(|i| ("like", format!("2606.{i:05}")))
        .chain(form(email, &[]))
        .collect();
    let r = post(&t, "/subscribe", &many).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("At most 20 papers"));
    assert_eq!(t.state_of(email).await, None, "no subscriber row");

    let r = post(
        &t,
        "/subscribe/steer",
        &form(email, &[("steer", "more:' OR 1=1 --")]),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("is not a paper id"));
    let r = post(&t, "/subscribe/steer", &form(email, &[("steer", "drop")])).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // A forged draft shows the empty form.
    let page = t.client.get(t.url("/?d=AAAA")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    t.stop().await;
}

#[tokio::test]
async fn the_settings_preview_offers_like_and_not_as_plain_forms_recorded_as_feedback() {
    let (t, _clock) = TestApp::spawn_at(at("2026-06-12T07:00:00Z"), &[]).await;
    t.seed_hf_fixture().await;
    let email = "settings@example.org";
    assert_eq!(
        post(&t, "/subscribe", &form(email, &[])).await.status(),
        StatusCode::SEE_OTHER
    );
    let link = t.confirmation_link(email, 1).await;
    let body = t
        .client
        .post(&link)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let manage = extract_links(&body)
        .into_iter()
        .find(|l| l.contains("/manage/"))
        .unwrap();
    let id = subscriber_id(&t, email).await;

    // The page ranks the preview itself, each paper with its two buttons.
    let page = t.client.get(&manage).send().await.unwrap();
    let page = page.text().await.unwrap();
    assert!(page.contains("value=\"preview_choice\""), "{page}");
    assert!(page.contains("name=\"choice\" value=\"not_for_me\""));
    let ids = preview_ids(&t, TOPICS).await;
    assert!(page.contains(&format!("name=\"paper\" value=\"{}\"", ids[0])));

    // Without script: post, then back to the page saying what was done.
    let fields = [
        ("action", "preview_choice".to_string()),
        ("paper", ids[0].clone()),
        ("choice", "not_for_me".to_string()),
    ];
    let r = t.client.post(&manage).form(&fields).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(r.headers()["location"]
        .to_str()
        .unwrap()
        .ends_with("?done=not-this"));
    let after = t.follow(r).await.text().await.unwrap();
    assert!(after.contains("papers like this one will rank lower"));
    let fb = t.app.store.feedback_of(id).await.unwrap();
    assert_eq!((fb.len(), fb[0].action), (1, FeedbackAction::NotForMe));

    // With script: the same post asking for JSON; no redirect.
    let fields = [
        ("action", "preview_choice".to_string()),
        ("paper", ids[1].clone()),
        ("choice", "more".to_string()),
    ];
    let r = t
        .client
        .post(&manage)
        .header("accept", "application/json")
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let json: serde_json::Value = r.json().await.unwrap();
    assert_eq!(json["done"], "liked");
    assert_eq!(t.app.store.feedback_of(id).await.unwrap().len(), 2);

    // Hostile and unknown papers change nothing.
    let bad = [
        ("action", "preview_choice".to_string()),
        ("paper", "x\" onmouseover=\"alert(1)".to_string()),
        ("choice", "more".to_string()),
    ];
    let r = t.client.post(&manage).form(&bad).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let gone = [
        ("action", "preview_choice".to_string()),
        ("paper", "2606.99999".to_string()),
        ("choice", "more".to_string()),
    ];
    let r = t.client.post(&manage).form(&gone).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(t.app.store.feedback_of(id).await.unwrap().len(), 2);
    t.stop().await;
}
