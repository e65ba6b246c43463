//! The subscriber lifecycle through the real HTTP server and a real SMTP
//! server: subscribe, double opt-in, manage, one-click unsubscribe.

use crate::support::{client, extract_links, links_in, TestApp};
use mail_parser::MimeHeaders;
use paperboy::domain::EmailAddress;
use reqwest::StatusCode;

#[tokio::test]
async fn the_whole_lifecycle_from_subscribe_to_one_click_unsubscribe() {
    let t = TestApp::spawn().await;
    let email = "ada@example.org";

    let resp = t.subscribe_email(email).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.text().await.unwrap().contains("Check your inbox"));

    // The confirmation arrives at the SMTP server; its link is extracted.
    let link = t.confirmation_link(email, 1).await;
    assert!(link.starts_with(&t.base_url), "{link}");

    // GET (as a link scanner would) does not confirm, however often.
    for _ in 0..3 {
        let page = t.client.get(&link).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        assert!(page.text().await.unwrap().contains("Confirm subscription"));
    }
    assert_eq!(t.state_of(email).await.as_deref(), Some("pending"));

    // POST confirms, and the page links to the settings.
    let page = t.client.post(&link).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let body = page.text().await.unwrap();
    assert!(body.contains("You are subscribed"));
    assert_eq!(t.state_of(email).await.as_deref(), Some("active"));
    let manage = extract_links(&body)
        .into_iter()
        .find(|l| l.contains("/manage/"))
        .unwrap();

    // The confirm link is single use: pressing again says so and offers
    // the settings link by mail instead of confirming anything twice.
    let again = t.client.post(&link).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    assert!(again
        .text()
        .await
        .unwrap()
        .contains("You are already subscribed"));

    // Manage: changes are saved and shown.
    // Saving answers with a redirect back to the page (post/redirect/get),
    // which names what was done.
    let saved = t
        .manage_post(
            &manage,
            &[
                ("action", "save"),
                ("topics", "mixture of experts\nRLHF"),
                ("excluded", "survey"),
                ("authors", "Ada Lovelace"),
                ("categories", "cs.LG, cs.CL"),
                ("digest_size", "7"),
                ("frequency", "weekly"),
                ("weekly_day", "friday"),
                ("send_time", "06:45"),
                ("time_zone", "America/New_York"),
                ("fallback_trending", "on"),
            ],
        )
        .await;
    assert_eq!(saved.status(), StatusCode::OK);
    assert!(
        saved.url().as_str().ends_with("?done=saved"),
        "{}",
        saved.url()
    );
    assert!(saved
        .text()
        .await
        .unwrap()
        .contains("Your settings are saved"));
    let shown = t
        .client
        .get(&manage)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for expected in [
        "mixture of experts",
        "RLHF",
        "survey",
        "Ada Lovelace",
        "cs.LG, cs.CL",
        "06:45",
        "America/New_York",
    ] {
        assert!(shown.contains(expected), "settings page lacks {expected}");
    }
    let sub = t
        .app
        .store
        .subscriber_by_email(&EmailAddress::parse(email).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sub.preferences.digest_size, 7);
    assert_eq!(sub.preferences.frequency.encode(), "weekly:friday");
    assert!(sub.preferences.fallback_trending);

    // One-click unsubscribe from a client without cookies, Gmail's body.
    let unsubscribe = manage.replace("/manage/", "/unsubscribe/");
    let one_click = || {
        client()
            .post(&unsubscribe)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("List-Unsubscribe=One-Click")
    };
    let r = one_click().send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().get("location").is_none());
    assert!(r.headers().get("set-cookie").is_none());
    assert_eq!(t.state_of(email).await.as_deref(), Some("unsubscribed"));
    // Idempotent.
    assert_eq!(one_click().send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(t.state_of(email).await.as_deref(), Some("unsubscribed"));
    t.stop().await;
}

#[tokio::test]
async fn one_click_accepts_urlencoded_multipart_and_empty_bodies() {
    let t = TestApp::spawn().await;
    let bodies: [(&str, Option<&str>, &str); 3] = [
        ("u1@example.org", Some("application/x-www-form-urlencoded"), "List-Unsubscribe=One-Click"),
        (
            "u2@example.org",
            Some("multipart/form-data; boundary=XYZ"),
            "--XYZ\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n--XYZ--\r\n",
        ),
        ("u3@example.org", None, ""),
    ];
    for (email, ctype, body) in bodies {
        let manage = t.subscribe_and_confirm(email).await;
        let url = manage.replace("/manage/", "/unsubscribe/");
        let mut req = client().post(&url).body(body.to_string());
        if let Some(c) = ctype {
            req = req.header("content-type", c);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{email}");
        assert_eq!(
            t.state_of(email).await.as_deref(),
            Some("unsubscribed"),
            "{email}"
        );
    }
    t.stop().await;
}

#[tokio::test]
async fn unsubscribe_get_changes_nothing_and_offers_topics_instead() {
    let t = TestApp::spawn().await;
    let manage = t.subscribe_and_confirm("gina@example.org").await;
    let url = manage.replace("/manage/", "/unsubscribe/");
    for _ in 0..5 {
        let r = t.client.get(&url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["referrer-policy"], "no-referrer");
        assert_eq!(r.headers()["cache-control"], "no-store");
        assert_eq!(r.headers()["x-robots-tag"], "noindex");
        let body = r.text().await.unwrap();
        assert!(
            body.contains("speculative decoding"),
            "topics offered for editing"
        );
        assert!(body.contains(">Unsubscribe</button>"));
    }
    let head = t.client.head(&url).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(
        t.state_of("gina@example.org").await.as_deref(),
        Some("active")
    );

    // Editing topics from the unsubscribe page keeps the subscription.
    let r = t
        .client
        .post(&manage)
        .form(&[("action", "topics"), ("topics", "diffusion models")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let sub = t
        .app
        .store
        .subscriber_by_email(&EmailAddress::parse("gina@example.org").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sub.preferences.topics, vec!["diffusion models"]);
    assert_eq!(
        sub.preferences.send_time.format("%H:%M").to_string(),
        "07:30",
        "other settings kept"
    );
    t.stop().await;
}

#[tokio::test]
async fn resubscribing_after_unsubscribe_needs_a_fresh_double_opt_in() {
    let t = TestApp::spawn_with(&[("PAPERBOY__SUBSCRIBE__PER_ADDRESS_MIN_INTERVAL_MINUTES", "0")])
        .await;
    let email = "hal@example.org";
    let manage = t.subscribe_and_confirm(email).await;
    let url = manage.replace("/manage/", "/unsubscribe/");
    client().post(&url).send().await.unwrap();
    assert_eq!(t.state_of(email).await.as_deref(), Some("unsubscribed"));

    assert_eq!(t.subscribe_email(email).await.status(), StatusCode::OK);
    assert_eq!(t.state_of(email).await.as_deref(), Some("pending"));
    let link = t.confirmation_link(email, 2).await;
    t.client.post(&link).send().await.unwrap();
    assert_eq!(t.state_of(email).await.as_deref(), Some("active"));
    t.stop().await;
}

/// One answer to a subscribe request: the page after the redirect, with
/// the address replaced by `ADDRESS`.
struct Answer {
    email: String,
    status: StatusCode,
    headers: Vec<(String, String)>,
    body: String,
}

/// Subscribes each of `emails` once more and returns the answers: the page
/// names the address typed, and must say nothing else about it.
async fn answers(t: &TestApp, emails: &[&str]) -> Vec<Answer> {
    let mut out = Vec::new();
    for email in emails {
        let r = t.subscribe_email(email).await;
        let status = r.status();
        let mut headers: Vec<(String, String)> = r
            .headers()
            .iter()
            .filter(|(k, _)| *k != "date" && *k != "content-length")
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
            .collect();
        headers.sort();
        let body = r.text().await.unwrap();
        assert!(body.contains(email), "{email}: the page names the address");
        out.push(Answer {
            email: email.to_string(),
            status,
            headers,
            body: body.replace(email, "ADDRESS"),
        });
    }
    out
}

fn assert_all_alike(answers: &[Answer], says: &str) {
    let first = &answers[0];
    assert!(first.body.contains(says), "{}", first.body);
    for a in &answers[1..] {
        assert_eq!(a.status, first.status, "{}: status differs", a.email);
        assert_eq!(a.headers, first.headers, "{}: headers differ", a.email);
        assert_eq!(a.body, first.body, "{}: body differs", a.email);
    }
}

#[tokio::test]
async fn subscribe_answers_identically_for_every_address_state() {
    // A stopped clock: every earlier mail went out at the same instant.
    let now = chrono::DateTime::parse_from_rfc3339("2026-06-12T12:00:00Z")
        .unwrap()
        .to_utc();
    let (t, clock) = TestApp::spawn_at(now, &[]).await;
    // new (asked once already), pending, active, unsubscribed
    t.subscribe_email("new@example.org").await;
    t.subscribe_email("pending@example.org").await;
    t.subscribe_and_confirm("active@example.org").await;
    let m = t.subscribe_and_confirm("gone@example.org").await;
    client()
        .post(m.replace("/manage/", "/unsubscribe/"))
        .send()
        .await
        .unwrap();
    // suppressed (hard bounce), asked once already
    t.app
        .store
        .suppress(
            &EmailAddress::parse("bounced@example.org").unwrap(),
            paperboy::store::subscribers::SuppressionReason::HardBounce,
            t.app.now(),
        )
        .await
        .unwrap();
    t.subscribe_email("bounced@example.org").await;
    let emails = [
        "new@example.org",
        "pending@example.org",
        "active@example.org",
        "gone@example.org",
        "bounced@example.org",
    ];

    // Each was mailed (or, suppressed, counted as if) a moment ago: the
    // same words for all, naming the address and the time.
    let recent = answers(&t, &emails).await;
    assert_all_alike(&recent, "A message is already on its way");
    assert!(recent[0]
        .body
        .contains("You can ask for another from 14:15"));

    // Past the per-address pause, each request answers "sent" alike.
    clock.set(now + chrono::Duration::minutes(16));
    let sent = answers(&t, &emails).await;
    assert_all_alike(&sent, "Check your inbox");

    // And nothing is ever sent to the suppressed address.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(t.sink.messages_to("bounced@example.org").is_empty());
    t.stop().await;
}

#[tokio::test]
async fn the_inbox_page_shows_the_typed_address_and_tells_the_truth_about_a_recent_mail() {
    let now = chrono::DateTime::parse_from_rfc3339("2026-06-12T12:00:00Z")
        .unwrap()
        .to_utc();
    let (t, clock) = TestApp::spawn_at(now, &[]).await;
    let email = "o'hara&co@example.org";
    let escaped = "o&#x27;hara&amp;co@example.org";
    let first = t.subscribe_email(email).await;
    assert_eq!(first.status(), StatusCode::OK);
    let receipt = first.url().to_string();
    let body = first.text().await.unwrap();
    assert!(body.contains("Check your inbox"), "{body}");
    assert!(body.contains(escaped), "the address, escaped: {body}");
    assert!(!body.contains(email));
    t.sink.wait_for(email, 1).await;

    // Again within the per-address pause: no second mail, and the page
    // says so, with when the first went and when another can be asked
    // for, in the zone chosen on the form (Europe/Berlin).
    let again = t.subscribe_email(email).await.text().await.unwrap();
    assert!(again.contains("A message is already on its way"), "{again}");
    assert!(again.contains(&format!("to {escaped} at 14:00")), "{again}");
    assert!(!again.contains("we have sent it"), "{again}");
    assert!(
        again.contains("You can ask for another from 14:15"),
        "{again}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(t.sink.messages_to(email).len(), 1);

    // The page can be reloaded for an hour; then, or tampered with, it
    // gives the general answer without the address.
    assert!(t
        .client
        .get(&receipt)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .contains(escaped));
    clock.set(now + chrono::Duration::minutes(61));
    for url in [
        receipt.clone(),
        format!("{receipt}x"),
        t.url("/subscribe/sent"),
    ] {
        let page = t.client.get(&url).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        let page = page.text().await.unwrap();
        assert!(
            page.contains("Check your inbox") && !page.contains(escaped),
            "{url}: {page}"
        );
    }
    t.stop().await;
}

#[tokio::test]
async fn a_subscription_needs_a_topic_an_author_a_category_or_the_trending_choice() {
    let t = TestApp::spawn().await;
    let form = |email: &'static str, topics: &'static str, trending: bool| {
        let mut f = vec![
            ("email", email),
            ("topics", topics),
            ("send_time", "08:00"),
            ("time_zone", "UTC"),
        ];
        if trending {
            f.push(("fallback_trending", "on"));
        }
        f
    };
    // No topic, or only separators: the usual field error, nothing stored.
    for topics in ["", " , ;\n "] {
        let r = t.subscribe(&form("empty@example.org", topics, false)).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let body = r.text().await.unwrap();
        assert!(
            body.contains(r#"aria-invalid="true" aria-describedby="topics-error" autofocus"#),
            "{body}"
        );
        assert!(body.contains("Add at least one topic"), "{body}");
    }
    assert_eq!(t.state_of("empty@example.org").await, None);
    // The explicit choice of trending papers is enough.
    let r = t.subscribe(&form("trend@example.org", "", true)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let addr = EmailAddress::parse("trend@example.org").unwrap();
    let sub = t
        .app
        .store
        .subscriber_by_email(&addr)
        .await
        .unwrap()
        .unwrap();
    assert!(sub.preferences.topics.is_empty() && sub.preferences.fallback_trending);

    // The settings page holds to the same rule, and a followed author
    // counts as something to look for.
    let manage = t.subscribe_and_confirm("keep@example.org").await;
    let save = |topics: &'static str, authors: &'static str| {
        vec![
            ("action", "save"),
            ("topics", topics),
            ("authors", authors),
            ("frequency", "daily"),
            ("send_time", "08:00"),
            ("time_zone", "UTC"),
        ]
    };
    let r = t
        .client
        .post(&manage)
        .form(&save("", ""))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("Add at least one topic"));
    // The unsubscribe page's topics-only form too.
    let r = t
        .client
        .post(&manage)
        .form(&[("action", "topics"), ("topics", "")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let addr = EmailAddress::parse("keep@example.org").unwrap();
    let kept = t
        .app
        .store
        .subscriber_by_email(&addr)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.preferences.topics, vec!["speculative decoding", "RAG"]);
    // A category alone counts too: it is followed.
    let mut follow = save("", "");
    follow.push(("categories", "cs.RO"));
    let r = t.manage_post(&manage, &follow).await;
    assert_eq!(r.status(), StatusCode::OK);
    let followed = t
        .app
        .store
        .subscriber_by_email(&addr)
        .await
        .unwrap()
        .unwrap();
    assert!(followed.preferences.topics.is_empty() && followed.preferences.can_send());
    assert_eq!(followed.preferences.categories, vec!["cs.RO"]);
    let r = t.manage_post(&manage, &save("", "Ada Lovelace")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let kept = t
        .app
        .store
        .subscriber_by_email(&addr)
        .await
        .unwrap()
        .unwrap();
    assert!(kept.preferences.topics.is_empty());
    assert_eq!(kept.preferences.authors, vec!["Ada Lovelace"]);

    // A profile stored before the rule (nothing to look for) is told so on
    // its settings page.
    let mut empty = kept.preferences.clone();
    empty.authors.clear();
    t.app
        .store
        .update_preferences(kept.id, &empty, t.app.now())
        .await
        .unwrap();
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
        page.contains(
            r#"<p class="notice warn" role="status" id="nothing-to-send">Add at least one topic"#
        ),
        "{page}"
    );
    t.stop().await;
}

#[tokio::test]
async fn comma_separated_topics_are_separate_topics_on_every_form_and_preview() {
    let now = chrono::DateTime::parse_from_rfc3339("2026-06-12T12:00:00Z")
        .unwrap()
        .to_utc();
    let (t, _clock) = TestApp::spawn_at(now, &[]).await;
    t.seed_hf_fixture().await;
    let email = "commas@example.org";
    let r = t
        .subscribe(&[
            ("email", email),
            (
                "topics",
                "video generation, reinforcement learning; LLM safety",
            ),
            ("send_time", "08:00"),
            ("time_zone", "UTC"),
        ])
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let addr = EmailAddress::parse(email).unwrap();
    let sub = t
        .app
        .store
        .subscriber_by_email(&addr)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        sub.preferences.topics,
        vec!["video generation", "reinforcement learning", "LLM safety"]
    );

    // The live preview reads them the same way, finds what the same topics
    // on separate lines find, and lists the topics it read.
    let preview = |topics: &'static str| {
        let t = &t;
        async move {
            let v: serde_json::Value = t
                .client
                .get(t.url("/preview"))
                .query(&[("topics", topics), ("format", "json")])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v
        }
    };
    let commas = preview("video generation, reinforcement learning").await;
    let lines = preview("video generation\nreinforcement learning").await;
    assert!(!commas["papers"].as_array().unwrap().is_empty());
    assert_eq!(commas["papers"], lines["papers"]);
    let read: Vec<&str> = commas["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["topic"].as_str().unwrap())
        .collect();
    assert_eq!(read, vec!["video generation", "reinforcement learning"]);

    // Saving settings with semicolons, and the settings page's preview.
    t.client
        .post(&t.confirmation_link(email, 1).await)
        .send()
        .await
        .unwrap();
    let manage = t
        .app
        .links
        .manage_url(&t.app.links.manage_token(sub.id, sub.token_generation));
    let r = t
        .manage_post(
            &manage,
            &[
                ("action", "save"),
                ("topics", "RAG; diffusion models"),
                ("frequency", "daily"),
                ("send_time", "08:00"),
                ("time_zone", "UTC"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let page = r.text().await.unwrap();
    // The settings page lists the topics as read.
    assert!(page.contains(r#"<span class="chip">RAG</span>"#), "{page}");
    assert!(page.contains(r#"<span class="chip">diffusion models</span>"#));
    let sub = t.app.store.subscriber(sub.id).await.unwrap();
    assert_eq!(sub.preferences.topics, vec!["RAG", "diffusion models"]);
    let v: serde_json::Value = t
        .client
        .get(format!("{manage}/preview"))
        .query(&[("topics", "RAG, diffusion models, world models")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["topics"].as_array().unwrap().len(), 3, "{v}");
    t.stop().await;
}

#[tokio::test]
async fn repeated_subscribes_of_one_address_send_one_confirmation() {
    let t = TestApp::spawn().await;
    for _ in 0..10 {
        assert_eq!(
            t.subscribe_email("flood@example.org").await.status(),
            StatusCode::OK
        );
    }
    t.sink.wait_for("flood@example.org", 1).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(t.sink.messages_to("flood@example.org").len(), 1);
    t.stop().await;
}

#[tokio::test]
async fn a_filled_honeypot_gets_the_same_answer_but_no_row_and_no_mail() {
    let t = TestApp::spawn().await;
    let normal = t
        .subscribe_email("human@example.org")
        .await
        .text()
        .await
        .unwrap();
    let bot = t
        .subscribe(&[
            ("email", "bot@example.org"),
            ("topics", "RAG"),
            ("send_time", "08:00"),
            ("time_zone", "UTC"),
            ("website", "http://spam.example"),
        ])
        .await;
    assert_eq!(bot.status(), StatusCode::OK);
    assert_eq!(
        bot.text().await.unwrap().replace("bot@", "ADDRESS"),
        normal.replace("human@", "ADDRESS")
    );
    assert_eq!(t.state_of("bot@example.org").await, None);
    t.sink.wait_for("human@example.org", 1).await;
    assert!(t.sink.messages_to("bot@example.org").is_empty());
    t.stop().await;
}

#[tokio::test]
async fn per_ip_limit_answers_429_and_forged_forwarded_for_changes_nothing() {
    let t = TestApp::spawn_with(&[("PAPERBOY__SUBSCRIBE__PER_IP_PER_MINUTE", "5")]).await;
    let mut statuses = Vec::new();
    for i in 0..8 {
        let r = t
            .client
            .post(t.url("/subscribe"))
            .header("x-forwarded-for", format!("203.0.113.{i}"))
            .form(&[
                ("email", format!("ip{i}@example.org")),
                ("topics", "RAG".into()),
                ("send_time", "08:00".into()),
                ("time_zone", "UTC".into()),
            ])
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, vec![303, 303, 303, 303, 303, 429, 429, 429]);
    t.stop().await;
}

#[tokio::test]
async fn bad_input_gets_a_4xx_with_a_message_and_changes_no_row() {
    let t = TestApp::spawn().await;
    let long_local = format!("{}@example.org", "a".repeat(65));
    let long_total = format!("{}@{}.org", "b".repeat(60), "c".repeat(200));
    let addresses: Vec<String> = [
        "",
        " ",
        "plainaddress",
        "@example.org",
        "alice@",
        "alice@example",
        "alice@localhost",
        "alice@example.org.",
        "alice@.example.org",
        "alice@exa..mple.org",
        "alice@@example.org",
        "alice@[127.0.0.1]",
        "Alice <alice@example.org>",
        "\"><script>\"@example.org",
        "alice@example.org\r\nBcc: victim@example.org",
        "alice\n@example.org",
        "alice@exa mple.org",
        "alice@example.org\0",
        "élise@example.org",
        ".alice@example.org",
        "alice.@example.org",
        "al..ice@example.org",
        "alice@-example.org",
        "alice@example.org,bob@example.org",
        "alice;bob@example.org",
        "<alice@example.org>",
        "alice@example.org>",
        "javascript:alert(1)@x.org",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([long_local, long_total])
    .collect();
    assert!(addresses.len() >= 30);
    for email in &addresses {
        let r = t
            .subscribe(&[
                ("email", email),
                ("topics", "RAG"),
                ("send_time", "08:00"),
                ("time_zone", "UTC"),
            ])
            .await;
        assert!(r.status().is_client_error(), "{email:?}: {}", r.status());
        let body = r.text().await.unwrap();
        assert!(
            body.contains("Please fix the following"),
            "{email:?}: no message"
        );
    }

    let good = |extra: (&'static str, String)| {
        let mut f: Vec<(&str, String)> = vec![
            ("email", "ok@example.org".into()),
            ("topics", "RAG".into()),
            ("send_time", "08:00".into()),
            ("time_zone", "UTC".into()),
        ];
        f.retain(|(k, _)| *k != extra.0);
        f.push(extra);
        f
    };
    let bad_fields: Vec<(&str, String)> = vec![
        ("topics", "x".repeat(5000)),
        (
            "topics",
            (0..30)
                .map(|i| format!("topic {i}"))
                .collect::<Vec<_>>()
                .join("\n"),
        ),
        ("topics", "y".repeat(150)),
        ("time_zone", "Mars/Olympus_Mons".into()),
        ("time_zone", "UTC+25".into()),
        ("time_zone", "a".repeat(300)),
        ("send_time", "25:99".into()),
        ("send_time", "8 o'clock".into()),
    ];
    for field in bad_fields {
        let r = t
            .client
            .post(t.url("/subscribe"))
            .form(&good(field.clone()))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_client_error(), "{}: {}", field.0, r.status());
    }

    // A 1 MB body.
    let huge = format!("email=a%40example.org&topics={}", "x".repeat(1024 * 1024));
    let r = t
        .client
        .post(t.url("/subscribe"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);

    // Non-UTF-8 bodies, raw and percent-encoded, and a wrong content type.
    for (ctype, body) in [
        (
            "application/x-www-form-urlencoded",
            b"email=\xff\xfe@example.org&time_zone=UTC".to_vec(),
        ),
        (
            "application/x-www-form-urlencoded",
            b"email=%ff%fe%40example.org".to_vec(),
        ),
        ("application/x-www-form-urlencoded", b"email=%zz".to_vec()),
        (
            "application/json",
            b"{\"email\":\"a@example.org\"}".to_vec(),
        ),
        ("text/plain", b"hello".to_vec()),
    ] {
        let r = t
            .client
            .post(t.url("/subscribe"))
            .header("content-type", ctype)
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_client_error(), "{ctype}: {}", r.status());
        assert!(!r.text().await.unwrap().is_empty());
    }

    // Nothing was stored, nothing sent.
    assert!(t.app.store.list_subscribers(None).await.unwrap().is_empty());
    assert!(t.sink.messages().is_empty());
    t.stop().await;
}

#[tokio::test]
async fn invalid_manage_input_rerenders_with_errors_and_saves_nothing() {
    let t = TestApp::spawn().await;
    let manage = t.subscribe_and_confirm("ivy@example.org").await;
    let before = t
        .app
        .store
        .subscriber_by_email(&EmailAddress::parse("ivy@example.org").unwrap())
        .await
        .unwrap()
        .unwrap();
    let r = t
        .client
        .post(&manage)
        .form(&[
            ("action", "save"),
            ("topics", "new topic"),
            ("digest_size", "500"),
            ("frequency", "daily"),
            ("send_time", "08:00"),
            ("time_zone", "Nowhere/City"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = r.text().await.unwrap();
    assert!(body.contains("Nothing was saved"));
    assert!(body.contains("Digest size must be"));
    assert!(body.contains("Unknown time zone"));
    assert!(body.contains("new topic"), "the form keeps what was typed");
    let after = t.app.store.subscriber(before.id).await.unwrap();
    assert_eq!(after.preferences, before.preferences);
    t.stop().await;
}

#[tokio::test]
async fn cross_site_manage_posts_are_refused_but_one_click_is_not() {
    let t = TestApp::spawn().await;
    let manage = t.subscribe_and_confirm("joe@example.org").await;
    let pause = |site: Option<&'static str>, origin: Option<&'static str>| {
        let mut r = t.client.post(&manage).form(&[("action", "pause")]);
        if let Some(s) = site {
            r = r.header("sec-fetch-site", s);
        }
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        r
    };
    assert_eq!(
        pause(Some("cross-site"), None)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        pause(None, Some("https://evil.example"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        t.state_of("joe@example.org").await.as_deref(),
        Some("active")
    );
    assert_eq!(
        pause(Some("same-origin"), None)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        t.state_of("joe@example.org").await.as_deref(),
        Some("paused")
    );

    let one_click = client()
        .post(manage.replace("/manage/", "/unsubscribe/"))
        .header("sec-fetch-site", "cross-site")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(one_click.status(), StatusCode::OK);
    assert_eq!(
        t.state_of("joe@example.org").await.as_deref(),
        Some("unsubscribed")
    );
    t.stop().await;
}

#[tokio::test]
async fn the_database_never_holds_a_plaintext_token_and_tokens_are_per_subscriber() {
    let t = TestApp::spawn().await;
    let manage_a = t.subscribe_and_confirm("kim@example.org").await;
    let manage_b = t.subscribe_and_confirm("lee@example.org").await;
    // A third, pending subscriber whose confirm token is outstanding.
    t.subscribe_email("max@example.org").await;
    let confirm_c = t.confirmation_link("max@example.org", 1).await;
    let confirm_a = links_in(&t.sink.messages_to("kim@example.org")[0])
        .into_iter()
        .find(|l| l.contains("/confirm/"))
        .unwrap();

    let tokens: Vec<String> = [&manage_a, &manage_b, &confirm_c, &confirm_a]
        .iter()
        .map(|u| u.rsplit('/').next().unwrap().to_string())
        .collect();
    t.app.store.checkpoint().await.unwrap();
    let mut bytes = std::fs::read(t.db_path()).unwrap();
    if let Ok(wal) = std::fs::read(t.db_path().with_extension("sqlite-wal")) {
        bytes.extend(wal);
    }
    for tok in &tokens {
        assert_eq!(tok.len(), 43);
        assert!(
            !bytes.windows(tok.len()).any(|w| w == tok.as_bytes()),
            "plaintext token found in the database file"
        );
    }

    // A's token only ever touches A.
    let r = t
        .client
        .post(&manage_a)
        .form(&[
            ("action", "save"),
            ("topics", "only for kim"),
            ("send_time", "09:00"),
            ("time_zone", "UTC"),
            ("digest_size", "3"),
            ("frequency", "daily"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let lee = t
        .app
        .store
        .subscriber_by_email(&EmailAddress::parse("lee@example.org").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(lee.preferences.topics, vec!["speculative decoding", "RAG"]);
    client()
        .post(manage_a.replace("/manage/", "/unsubscribe/"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        t.state_of("lee@example.org").await.as_deref(),
        Some("active")
    );

    // A tampered token, a confirm token used as a manage token, and random
    // tokens all get the generic 404 page.
    let mut tampered = tokens[1].clone().into_bytes();
    tampered[10] = if tampered[10] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    for tok in [
        tampered.as_str(),
        tokens[2].as_str(),
        "short",
        paperboy::domain::Token::generate().as_str(),
    ] {
        let r = t
            .client
            .get(t.url(&format!("/manage/{tok}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{tok}");
        let r = client()
            .post(t.url(&format!("/unsubscribe/{tok}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{tok}");
    }
    assert_eq!(
        t.state_of("lee@example.org").await.as_deref(),
        Some("active")
    );
    assert_eq!(
        t.state_of("max@example.org").await.as_deref(),
        Some("pending")
    );
    t.stop().await;
}

#[tokio::test]
async fn the_confirmation_mail_is_well_formed_mime() {
    let t = TestApp::spawn().await;
    t.subscribe_email("nia@example.org").await;
    let msg = &t.sink.wait_for("nia@example.org", 1).await[0];
    let parsed = mail_parser::MessageParser::default()
        .parse(&msg.data)
        .unwrap();

    let ctype = parsed.root_part().content_type().unwrap();
    assert_eq!(ctype.ctype(), "multipart");
    assert_eq!(ctype.subtype(), Some("alternative"));
    assert_eq!(parsed.text_body_count(), 1);
    assert_eq!(parsed.html_body_count(), 1);
    let id = parsed.message_id().unwrap();
    assert!(id.ends_with("@paperboy.test"), "{id}");
    assert!(
        id.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c)),
        "{id}"
    );
    assert_eq!(
        parsed.header_raw("List-Id").unwrap().trim(),
        "Test digest <daily.paperboy.test>"
    );
    assert_eq!(
        parsed.header_raw("Auto-Submitted").unwrap().trim(),
        "auto-generated"
    );
    assert!(parsed.date().is_some());
    let raw = msg.text();
    for h in ["From:", "To:", "Subject:", "Date:", "Message-ID:"] {
        let n = raw
            .lines()
            .take_while(|l| !l.is_empty())
            .filter(|l| l.starts_with(h))
            .count();
        assert_eq!(n, 1, "{h} appears {n} times");
    }
    // Both parts carry the link, and its host is the configured base URL.
    let html = parsed.body_html(0).unwrap();
    let text = parsed.body_text(0).unwrap();
    let link = extract_links(&text)
        .into_iter()
        .find(|l| l.contains("/confirm/"))
        .unwrap();
    assert!(html.contains(&link));
    let url = url::Url::parse(&link).unwrap();
    let base = url::Url::parse(&t.base_url).unwrap();
    assert_eq!((url.host_str(), url.port()), (base.host_str(), base.port()));
    t.stop().await;
}

#[tokio::test]
async fn export_returns_only_this_subscribers_data_and_delete_keeps_only_a_hash() {
    let t = TestApp::spawn_with(&[("PAPERBOY__SUBSCRIBE__PER_ADDRESS_MIN_INTERVAL_MINUTES", "0")])
        .await;
    let manage = t.subscribe_and_confirm("oli@example.org").await;
    t.subscribe_and_confirm("pat@example.org").await;

    let export = t
        .client
        .post(&manage)
        .form(&[("action", "export")])
        .send()
        .await
        .unwrap();
    assert_eq!(export.status(), StatusCode::OK);
    assert_eq!(export.headers()["content-type"], "application/json");
    let json: serde_json::Value = export.json().await.unwrap();
    assert_eq!(json["subscriber"]["email"], "oli@example.org");
    assert_eq!(json["consents"].as_array().unwrap().len(), 1);
    assert!(json["consents"][0]["confirmed_at"].is_string());
    assert!(!json.to_string().contains("pat@example.org"));

    // The first delete POST only asks for confirmation.
    let ask = t
        .client
        .post(&manage)
        .form(&[("action", "delete")])
        .send()
        .await
        .unwrap();
    let ask = t.follow(ask).await;
    assert!(ask.text().await.unwrap().contains("delete_confirmed"));
    assert_eq!(
        t.state_of("oli@example.org").await.as_deref(),
        Some("active")
    );
    let done = t
        .client
        .post(&manage)
        .form(&[("action", "delete_confirmed")])
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert_eq!(t.state_of("oli@example.org").await, None);
    let addr = EmailAddress::parse("oli@example.org").unwrap();
    assert!(t.app.store.suppression(&addr).await.unwrap().is_some());
    assert_eq!(
        t.client.get(&manage).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );

    // After VACUUM the file no longer holds the address.
    sqlx::query("VACUUM")
        .execute(t.app.store.pool())
        .await
        .unwrap();
    t.app.store.checkpoint().await.unwrap();
    let bytes = std::fs::read(t.db_path()).unwrap();
    assert!(!bytes.windows(15).any(|w| w == b"oli@example.org"));

    // A fresh double opt-in works and lifts the suppression.
    t.subscribe_email("oli@example.org").await;
    let link = t.confirmation_link("oli@example.org", 2).await;
    t.client.post(&link).send().await.unwrap();
    assert_eq!(
        t.state_of("oli@example.org").await.as_deref(),
        Some("active")
    );
    assert!(t.app.store.suppression(&addr).await.unwrap().is_none());
    t.stop().await;
}

#[tokio::test]
async fn healthz_and_metrics_report_state() {
    let t = TestApp::spawn().await;
    t.subscribe_and_confirm("quinn@example.org").await;
    let h: serde_json::Value = t
        .client
        .get(t.url("/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(h["status"], "ok");
    assert_eq!(h["database"], true);
    assert!(h.get("last_fetch").is_some() && h.get("last_digest_run").is_some());
    let m = t.client.get(t.url("/metrics")).send().await.unwrap();
    assert!(m.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = m.text().await.unwrap();
    assert!(
        text.contains("paperboy_subscribers{state=\"active\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("paperboy_transactional_mail{state=\"sent\"} 1"),
        "{text}"
    );
    assert!(text.contains("paperboy_confirmations_total 1"));
    t.stop().await;
}

#[tokio::test]
async fn healthz_is_degraded_and_metrics_count_a_delivery_whose_lease_ran_out() {
    let t = TestApp::spawn().await;
    t.subscribe_and_confirm("stuck@example.org").await;
    // A run that died (or hangs) holding a lease that has expired.
    sqlx::query(
        "INSERT INTO deliveries (subscriber_id, digest_date, state, due_at, next_attempt_at, \
         lease_until, created_at) SELECT id, '2026-01-01', 'sending', '2026-01-01T08:00:00.000Z', \
         '2026-01-01T08:00:00.000Z', '2026-01-01T08:05:00.000Z', '2026-01-01T08:00:00.000Z' \
         FROM subscribers",
    )
    .execute(t.app.store.pool())
    .await
    .unwrap();
    let res = t.client.get(t.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200, "the daemon still works");
    let h: serde_json::Value = res.json().await.unwrap();
    assert_eq!(h["status"], "degraded", "{h}");
    assert_eq!(h["deliveries"]["stuck"], 1, "{h}");
    let text = t
        .client
        .get(t.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("paperboy_digest_backlog{kind=\"stuck\"} 1"),
        "{text}"
    );
    t.stop().await;
}

#[tokio::test]
async fn the_live_preview_ranks_todays_papers_for_typed_topics() {
    let now = chrono::DateTime::parse_from_rfc3339("2026-06-12T12:00:00Z")
        .unwrap()
        .to_utc();
    let (t, _clock) = crate::support::TestApp::spawn_at(now, &[]).await;
    t.seed_hf_fixture().await;

    let r = t
        .client
        .get(t.url("/preview"))
        .query(&[
            ("topics", "video generation\nreinforcement learning"),
            ("format", "json"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let json: serde_json::Value = r.json().await.unwrap();
    let papers = json["papers"].as_array().unwrap();
    assert!(
        !papers.is_empty(),
        "some fixture paper is about these topics"
    );
    assert!(papers.len() <= 5);
    for p in papers {
        assert!(p["reason"].as_str().unwrap().starts_with("On "), "{p}");
        assert!(p["url"]
            .as_str()
            .unwrap()
            .starts_with("https://arxiv.org/abs/"));
    }

    // Nothing typed, nothing shown; no JavaScript needed for the HTML form.
    let empty: serde_json::Value = t
        .client
        .get(t.url("/preview?format=json&topics="))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(empty["papers"].as_array().unwrap().len(), 0);
    let page = t
        .client
        .get(t.url("/preview?topics=video+generation"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page
        .text()
        .await
        .unwrap()
        .contains("Preview of your digest"));

    // The subscribe page lists today's trending papers and wires the preview.
    let home = t
        .client
        .get(t.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(home.contains("Trending today"));
    assert!(home.contains("id=\"preview\""));
    assert!(
        home.contains("upvotes"),
        "trending entries show their upvotes"
    );
    t.stop().await;
}
