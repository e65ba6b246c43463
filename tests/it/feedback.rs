//! Feedback links from real digest mails: signed per reader, GET records
//! nothing, POST records once, undo, the settings page, and the next
//! digest reflecting it.

use crate::support::{extract_links, links_in, TestApp};
use chrono::{DateTime, Utc};
use paperboy::digest;
use paperboy::domain::{
    EmailAddress, FeedbackAction, PaperId, Preferences, SubscriberId, SubscriberState,
};
use paperboy::store::subscribers::{ConsentInput, ConsentMethod, SuppressionReason};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// An active subscriber, daily at 08:00 UTC.
async fn add_active(t: &TestApp, email: &str, topics: &[&str], size: u8) -> SubscriberId {
    let prefs = Preferences {
        topics: topics.iter().map(|t| t.to_string()).collect(),
        ..Preferences::new(
            size,
            chrono::NaiveTime::from_hms_opt(8, 0, 0).unwrap(),
            chrono_tz::UTC,
        )
    };
    let links = t.app.links.clone();
    let hash = move |id, g| links.manage_token_hash(id, g);
    t.app
        .store
        .add_subscriber(
            &EmailAddress::parse(email).unwrap(),
            &prefs,
            SubscriberState::Active,
            &ConsentInput {
                method: ConsentMethod::OperatorImport,
                source: "test".into(),
                consent_text_hash: "test".into(),
                ip: None,
            },
            &hash,
            at("2026-06-01T00:00:00Z"),
        )
        .await
        .unwrap()
}

async fn feedback_count(t: &TestApp, id: SubscriberId) -> usize {
    t.app.store.feedback_of(id).await.unwrap().len()
}

async fn post_form(t: &TestApp, url: &str, body: &str) -> reqwest::Response {
    t.client
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

/// Runs the digest at `now` and returns the text part of the mail `n`
/// (1-based) received by `email`, with its links.
async fn digest_mail(t: &TestApp, now: DateTime<Utc>, email: &str, n: usize) -> (String, String) {
    let picker = digest::RankPicker::for_run(&t.app, now).await.unwrap();
    let report = digest::run(&t.app, &picker, now).await.unwrap();
    assert_eq!(report.counts.sent, 1, "{report:?}");
    let msgs = t.sink.wait_for(email, n).await;
    let parsed = mail_parser::MessageParser::default()
        .parse(&msgs[n - 1].data)
        .unwrap();
    (
        parsed.body_text(0).unwrap().into_owned(),
        parsed.body_html(0).unwrap().into_owned(),
    )
}

#[tokio::test]
async fn more_like_this_from_a_real_digest_is_recorded_once_shown_in_settings_reflected_next_day_and_undone(
) {
    let (t, clock) = TestApp::spawn_at(at("2026-06-12T07:00:00Z"), &[]).await;
    t.seed_hf_fixture().await;
    let email = "reader@example.org";
    let id = add_active(&t, email, &["LLM agents"], 2).await;

    let day1 = at("2026-06-12T08:00:30Z");
    clock.set(day1);
    let (text, html) = digest_mail(&t, day1, email, 1).await;
    let links = extract_links(&text);
    let more: Vec<&String> = links.iter().filter(|l| l.contains(".more.")).collect();
    assert_eq!(more.len(), 2, "one per paper: {links:?}");
    assert_eq!(
        links.iter().filter(|l| l.contains(".not_for_me.")).count(),
        2
    );
    assert_eq!(links.iter().filter(|l| l.contains(".save.")).count(), 2);
    // The HTML part carries the same signed link (escaped for HTML).
    assert!(html.contains(more[0].as_str()), "html has the link");
    // The papers' own links are not rewritten.
    assert!(links
        .iter()
        .any(|l| l.starts_with("https://arxiv.org/abs/")));
    let link = more[0].clone();

    // A mail scanner's GET records nothing; the page names the paper.
    let page = t.client.get(&link).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    assert!(page.headers().get("set-cookie").is_none());
    let body = page.text().await.unwrap();
    assert!(body.contains("More papers like this?"), "{body}");
    assert!(body.contains("name=\"do\" value=\"record\""));
    assert_eq!(feedback_count(&t, id).await, 0, "GET never records");

    // The button's POST records it and redirects to the page, which a
    // reload shows again without posting; a second POST counts once.
    let r = post_form(&t, &link, "do=record").await;
    assert_eq!(r.status(), 303);
    assert!(r.headers().get("set-cookie").is_none());
    assert_eq!(r.headers()["location"], format!("{link}?done=recorded"));
    let body = t.follow(r).await.text().await.unwrap();
    assert!(body.contains("Thank you, noted"), "{body}");
    assert!(body.contains("value=\"undo\""), "the result offers undo");
    clock.set(day1 + chrono::Duration::minutes(5));
    assert_eq!(post_form(&t, &link, "do=record").await.status(), 303);
    let fb = t.app.store.feedback_of(id).await.unwrap();
    assert_eq!(fb.len(), 1);
    assert_eq!(fb[0].action, FeedbackAction::More);
    assert_eq!(fb[0].at, day1, "the repeat changed nothing");
    let liked_title = t
        .app
        .store
        .paper(&fb[0].paper)
        .await
        .unwrap()
        .unwrap()
        .title;

    // The settings page lists it with a remove button.
    let manage = links_in(&t.sink.messages_to(email)[0])
        .into_iter()
        .find(|l| l.contains("/manage/"))
        .unwrap();
    let settings = t
        .client
        .get(&manage)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(settings.contains("More like these"), "{settings}");
    let escaped = liked_title.replace('&', "&amp;").replace('\'', "&#x27;");
    assert!(settings.contains(&escaped) || settings.contains(&liked_title));
    assert!(settings.contains("value=\"forget_feedback\""));

    // The next digest says why a paper is there.
    let day2 = at("2026-06-13T08:00:30Z");
    clock.set(day2);
    let (text2, _) = digest_mail(&t, day2, email, 2).await;
    let short: String = liked_title.chars().take(20).collect();
    assert!(
        text2.contains("Similar to “")
            && text2.contains("which you liked")
            && text2.contains(&short),
        "{text2}"
    );

    // Undo from the same link removes it, and says so after the redirect.
    let r = post_form(&t, &link, "do=undo").await;
    assert_eq!(r.status(), 303);
    assert_eq!(feedback_count(&t, id).await, 0);
    let undone = t.follow(r).await.text().await.unwrap();
    assert!(undone.contains("<h1>Undone</h1>"), "{undone}");
    let settings = t
        .client
        .get(&manage)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!settings.contains("More like these"));
    t.stop().await;
}

#[tokio::test]
async fn forged_cross_subscriber_and_stale_feedback_tokens_are_rejected() {
    let t = TestApp::spawn().await;
    t.seed_hf_fixture().await;
    let a = add_active(&t, "a@example.org", &["LLM agents"], 3).await;
    let b = add_active(&t, "b@example.org", &["LLM agents"], 3).await;
    let paper: PaperId = t
        .app
        .store
        .candidates(chrono::NaiveDate::from_ymd_opt(2026, 6, 1).unwrap())
        .await
        .unwrap()[0]
        .paper
        .id
        .clone();
    let links = &t.app.links;
    let token_a = links.feedback_token(a, 0, &paper, FeedbackAction::More);
    let url = |tok: &str| links.feedback_url(tok);
    assert_eq!(
        t.client.get(url(&token_a)).send().await.unwrap().status(),
        200
    );

    // A's signature with B's id, another action, a wrong generation, or a
    // paper that does not exist: all refused, nothing recorded.
    let parts: Vec<&str> = token_a.split('.').collect();
    let cross = format!("{}.{}.{}.{}", b.0, parts[1], parts[2], parts[3]);
    let other_action = format!("{}.save.{}.{}", parts[0], parts[2], parts[3]);
    let stale = links.feedback_token(a, 1, &paper, FeedbackAction::More);
    let (ghost, _) = PaperId::parse_arxiv("2606.99999").unwrap();
    let ghost = links.feedback_token(a, 0, &ghost, FeedbackAction::More);
    for bad in [
        cross.as_str(),
        other_action.as_str(),
        stale.as_str(),
        ghost.as_str(),
        "garbage",
        "1.more.MA.AAAA",
    ] {
        assert_eq!(
            t.client.get(url(bad)).send().await.unwrap().status(),
            404,
            "{bad}"
        );
        assert_eq!(
            post_form(&t, &url(bad), "do=record").await.status(),
            404,
            "{bad}"
        );
    }
    assert_eq!(feedback_count(&t, a).await + feedback_count(&t, b).await, 0);

    // Same cross-site rules as the other forms.
    let r = t
        .client
        .post(url(&token_a))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("sec-fetch-site", "cross-site")
        .body("do=record")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(feedback_count(&t, a).await, 0);
    assert_eq!(post_form(&t, &url(&token_a), "do=what").await.status(), 400);

    // Deleting the subscriber deletes the feedback and kills the link.
    assert_eq!(
        post_form(&t, &url(&token_a), "do=record").await.status(),
        303
    );
    assert_eq!(feedback_count(&t, a).await, 1);
    t.app
        .store
        .delete_subscriber(a, SuppressionReason::Deleted, t.app.now())
        .await
        .unwrap();
    assert_eq!(feedback_count(&t, a).await, 0);
    assert_eq!(
        t.client.get(url(&token_a)).send().await.unwrap().status(),
        404
    );
    t.stop().await;
}

#[tokio::test]
async fn the_settings_page_exports_removes_and_suggests_from_feedback() {
    let t = TestApp::spawn().await;
    t.seed_hf_fixture().await;
    let id = add_active(&t, "s@example.org", &["LLM agents"], 3).await;
    let papers = t
        .app
        .store
        .candidates(chrono::NaiveDate::from_ymd_opt(2026, 6, 1).unwrap())
        .await
        .unwrap();
    let now = t.app.now();
    t.app
        .store
        .record_feedback(id, &papers[0].paper.id, FeedbackAction::Save, now)
        .await
        .unwrap();
    t.app
        .store
        .record_feedback(id, &papers[1].paper.id, FeedbackAction::NotForMe, now)
        .await
        .unwrap();
    let token = t.app.links.manage_token(id, 0);
    let manage = t.app.links.manage_url(&token);
    let page = t
        .client
        .get(&manage)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Saved papers") && page.contains("Not for me"),
        "{page}"
    );
    assert!(page.contains(&format!("/manage/{}/preview", token.as_str())));

    let export = post_form(&t, &manage, "action=export").await;
    let json: serde_json::Value = export.json().await.unwrap();
    let fb = json["feedback"].as_array().unwrap();
    assert_eq!(fb.len(), 2);

    let body = format!("action=forget_feedback&paper={}", papers[1].paper.id);
    let r = post_form(&t, &manage, &body).await;
    assert_eq!(r.status(), 303);
    assert!(r.headers()["location"]
        .to_str()
        .unwrap()
        .ends_with("?done=removed"));
    let left = t.app.store.feedback_of(id).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].action, FeedbackAction::Save);

    // Following an author who was not suggested is refused.
    let r = post_form(&t, &manage, "action=follow_author&author=Nobody+Special").await;
    assert_eq!(r.status(), 400);
    let sub = t.app.store.subscriber(id).await.unwrap();
    assert!(sub.preferences.authors.is_empty());

    // The feedback-aware preview answers JSON for this reader only.
    let r = t
        .client
        .get(format!("{manage}/preview?format=json&topics=LLM+agents"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert!(v["papers"].is_array());
    t.stop().await;
}
