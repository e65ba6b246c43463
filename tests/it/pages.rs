//! The pages as a new user meets them: a first run that shows papers as
//! soon as any process stores them, distinct empty states, the security
//! headers and served assets, and the way back after confirming.

use crate::support::{links_in, TestApp};
use chrono::{DateTime, Utc};
use paperboy::domain::{Paper, SourceKind};
use paperboy::store::papers::PaperBatch;
use paperboy::store::Store;
use reqwest::StatusCode;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

fn hf_fixture() -> Vec<Paper> {
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/hf_daily_papers_2026-06-12.json"
    ))
    .unwrap();
    paperboy::sources::parse_hf(&bytes, None).unwrap()
}

/// Stores papers through a second, independent connection pool on the
/// same file, as `paperboy fetch` in another process would.
async fn store_from_another_process(t: &TestApp, papers: &[Paper], observed: &str) {
    let other = Store::open(&t.app.config.database).await.unwrap();
    other
        .upsert_papers(PaperBatch {
            source: SourceKind::HuggingFace,
            papers,
            observed_at: at(observed),
            validators: &[],
        })
        .await
        .unwrap();
    other.close().await;
}

async fn home(t: &TestApp) -> String {
    let r = t.client.get(t.url("/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.text().await.unwrap()
}

async fn preview_json(t: &TestApp, topics: &str) -> serde_json::Value {
    t.client
        .get(t.url("/preview"))
        .query(&[("topics", topics), ("format", "json")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn papers_stored_by_another_process_show_at_once_on_the_home_page() {
    let (t, _clock) = TestApp::spawn_at(at("2026-06-12T12:00:00Z"), &[]).await;

    // Empty store: the page says why there is nothing, and the preview
    // says the same rather than "your topics match nothing".
    let page = home(&t).await;
    assert!(
        page.contains("No papers fetched yet (fetching now"),
        "{page}"
    );
    let empty = preview_json(&t, "video generation").await;
    assert_eq!(empty["papers"].as_array().unwrap().len(), 0);
    assert!(empty["note"]
        .as_str()
        .unwrap()
        .contains("No papers fetched yet"));

    // A fetch elsewhere stores papers: the very next request shows them,
    // though an (empty) copy was cached a moment ago.
    let mut papers = hf_fixture();
    store_from_another_process(&t, &papers, "2026-06-12T09:00:00Z").await;
    let page = home(&t).await;
    assert!(page.contains("id=\"trending\""), "{page}");
    assert!(!page.contains("No papers fetched yet"));

    // A later fetch changes upvotes: again visible at once, and the list
    // is in descending order of the upvotes it shows.
    papers[7].upvotes = Some(100_000);
    store_from_another_process(&t, &papers[7..8], "2026-06-12T11:00:00Z").await;
    let page = home(&t).await;
    let list = &page[page.find("id=\"trending\"").unwrap()..];
    let first = &list[list.find("<li>").unwrap()..list.find("</li>").unwrap()];
    let title = paperboy::render::escape_html(&papers[7].title);
    assert!(first.contains(&title), "most upvoted first: {first}");
    let votes: Vec<i64> = list[..list.find("</ol>").unwrap()]
        .split("<span class=\"meta\">")
        .skip(1)
        .filter_map(|s| s.split(' ').next()?.parse().ok())
        .collect();
    assert!(votes.len() >= 2, "{list}");
    assert!(votes.windows(2).all(|w| w[0] >= w[1]), "{votes:?}");
    assert!(page.contains("equal upvotes by upvotes gained"));

    // Stored candidates that a topic does not match: a different note.
    let none = preview_json(&t, "zzqx unmatched phrase").await;
    assert_eq!(none["papers"].as_array().unwrap().len(), 0);
    let note = none["note"].as_str().unwrap();
    assert!(note.contains("match nothing in the last"), "{note}");
    t.stop().await;
}

#[tokio::test]
async fn pages_carry_a_content_security_policy_and_load_only_served_files() {
    let t = TestApp::spawn().await;
    let r = t.client.get(t.url("/")).send().await.unwrap();
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("style-src 'self'"));
    assert!(!csp.contains("unsafe-inline"));
    assert!(r.headers()["permissions-policy"]
        .to_str()
        .unwrap()
        .contains("camera=()"));
    let html = r.text().await.unwrap();
    // No inline code for the policy to block: every script has a src,
    // and there is no <style> element or style attribute.
    assert!(!html.contains("<style") && !html.contains(" style="));
    for tag in html.split("<script").skip(1) {
        assert!(tag.trim_start().starts_with("src="), "inline script: {tag}");
    }
    for (path, kind) in [
        ("/static/app.css", "text/css"),
        ("/static/preview.js", "text/javascript"),
        ("/static/subscribe.js", "text/javascript"),
        ("/favicon.ico", "image/svg+xml"),
        ("/favicon.svg", "image/svg+xml"),
    ] {
        let r = t.client.get(t.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(kind),
            "{path}"
        );
        assert!(
            html.contains(path) || path == "/favicon.ico",
            "{path} is linked"
        );
    }
    t.stop().await;
}

#[tokio::test]
async fn reopening_a_used_confirmation_link_offers_the_settings_link_by_mail() {
    // No per-address pause, so the request right after confirming sends.
    let t = TestApp::spawn_with(&[("PAPERBOY__SUBSCRIBE__PER_ADDRESS_MIN_INTERVAL_MINUTES", "0")])
        .await;
    let email = "grace@example.org";
    assert_eq!(t.subscribe_email(email).await.status(), StatusCode::OK);
    let link = t.confirmation_link(email, 1).await;
    let raw = t.sink.messages_to(email)[0].data.clone();
    let mail = mail_parser::MessageParser::default().parse(&raw).unwrap();
    let text = mail.body_text(0).unwrap().replace('\n', " ");
    assert!(
        text.contains("open this link and press \"Confirm subscription\""),
        "{text}"
    );
    // The raw link wraps instead of widening a phone screen.
    assert!(mail
        .body_html(0)
        .unwrap()
        .contains("overflow-wrap:anywhere"));
    assert!(t
        .client
        .post(&link)
        .send()
        .await
        .unwrap()
        .status()
        .is_success());

    // Reopening the used link: no "invalid link", a way to the settings.
    let reopened = t.client.get(&link).send().await.unwrap();
    assert_eq!(reopened.status(), StatusCode::OK);
    let body = reopened.text().await.unwrap();
    assert!(body.contains("You are already subscribed"), "{body}");
    let action = format!("{link}/settings-link");
    assert!(body.contains(&action));

    // The request redirects to its answer, so a reload asks for nothing.
    let asked = t.client.post(&action).send().await.unwrap();
    assert_eq!(asked.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&asked), t.url("/settings-link/sent"));
    let answer = page(&t, &location(&asked)).await;
    assert!(answer.contains("on its way"));
    let msgs = t.sink.wait_for(email, 2).await;
    let manage = links_in(&msgs[1])
        .into_iter()
        .find(|l| l.contains("/manage/"))
        .expect("the mail carries the settings link");
    let settings = t.client.get(&manage).send().await.unwrap();
    assert_eq!(settings.status(), StatusCode::OK);

    // A second request at once is held back by the per-day and global
    // limits only; answers stay the same whatever is queued.
    let again = t.client.post(&action).send().await.unwrap();
    assert_eq!(location(&again), location(&asked));
    assert_eq!(page(&t, &location(&again)).await, answer);

    // A link that was never a confirmation link gets the invalid page,
    // and so does its settings-link action.
    let bogus = t.url("/confirm/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    assert_eq!(
        t.client.get(&bogus).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        t.client
            .post(format!("{bogus}/settings-link"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
    t.stop().await;
}

/// The HTML of `url` (a GET), asserting 200.
async fn page(t: &TestApp, url: &str) -> String {
    let r = t.client.get(url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{url}");
    r.text().await.unwrap()
}

/// POSTs a form without following the redirect.
async fn post(t: &TestApp, url: &str, fields: &[(&str, &str)]) -> reqwest::Response {
    t.client.post(url).form(fields).send().await.unwrap()
}

fn location(r: &reqwest::Response) -> String {
    r.headers()["location"].to_str().unwrap().to_string()
}

#[tokio::test]
async fn a_subscribe_request_redirects_to_a_page_a_reload_cannot_send_again() {
    let t = TestApp::spawn().await;
    let fields = [
        ("email", "prg@example.org"),
        ("topics", "RAG"),
        ("send_time", "07:30"),
        ("time_zone", "Europe/Berlin"),
    ];
    let r = post(&t, &t.url("/subscribe"), &fields).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(location(&r).starts_with(&t.url("/subscribe/sent?r=")));
    // The address travels sealed, never in the clear.
    assert!(!location(&r).contains("prg"), "{}", location(&r));
    // Reloading the answer is a GET: no second request, no second mail.
    for _ in 0..2 {
        assert!(page(&t, &location(&r)).await.contains("Check your inbox"));
    }
    t.sink.wait_for("prg@example.org", 1).await;
    let requests = t
        .app
        .metrics
        .subscribe_requests
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(requests, 1);
    t.stop().await;
}

#[tokio::test]
async fn saving_pausing_and_resuming_redirect_back_to_the_settings_page_with_a_notice() {
    let t = TestApp::spawn().await;
    let manage = t.subscribe_and_confirm("prg@example.org").await;

    let r = post(&t, &manage, &[("action", "pause")]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), format!("{manage}?done=paused"));
    assert_eq!(r.headers()["referrer-policy"], "no-referrer");
    let paused = page(&t, &location(&r)).await;
    // The Resume button sits beside the paused notice, above the form.
    let notice = paused.find("Digests are paused").expect("paused notice");
    let resume = paused.find("Resume digests").expect("resume button");
    let form = paused.find("Save settings").unwrap();
    assert!(
        notice < resume && resume < form,
        "resume is beside the notice"
    );

    let r = post(&t, &manage, &[("action", "resume")]).await;
    assert_eq!(location(&r), format!("{manage}?done=resumed"));
    assert!(page(&t, &location(&r))
        .await
        .contains("Digests are on again."));
    assert_eq!(
        t.state_of("prg@example.org").await.as_deref(),
        Some("active")
    );

    let r = post(
        &t,
        &manage,
        &[
            ("action", "save"),
            ("topics", "RAG"),
            ("frequency", "weekly:friday"),
        ],
    )
    .await;
    assert_eq!(location(&r), format!("{manage}?done=saved"));
    let saved = page(&t, &location(&r)).await;
    assert!(saved.contains("Your settings are saved."));
    assert!(saved.contains(r#"<option value="weekly:friday" selected>Weekly, on Friday</option>"#));
    // An unknown code shows no notice rather than an error.
    let plain = page(&t, &format!("{manage}?done=whatever")).await;
    assert!(!plain.contains(r#"class="notice""#));
    t.stop().await;
}

#[tokio::test]
async fn form_errors_sit_beside_their_fields_and_the_first_gets_focus() {
    let t = TestApp::spawn().await;
    let manage = t.subscribe_and_confirm("err@example.org").await;
    let r = post(
        &t,
        &manage,
        &[
            ("action", "save"),
            ("topics", "kept as typed"),
            ("digest_size", "500"),
            ("frequency", "daily"),
            ("send_time", "8 am"),
            ("time_zone", "UTC"),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = r.text().await.unwrap();
    for f in ["digest_size", "send_time"] {
        assert!(
            body.contains(&format!(
                r#"aria-invalid="true" aria-describedby="{f}-error""#
            )),
            "{f} is marked invalid"
        );
        assert!(body.contains(&format!(r#"<p class="field-error" id="{f}-error">"#)));
        assert!(
            body.contains(&format!(r##"<a href="#{f}">"##)),
            "summary links to {f}"
        );
    }
    // Focus goes to the first field in error, in page order, only.
    assert_eq!(body.matches(" autofocus").count(), 1);
    let focus = body.find(" autofocus").unwrap();
    let size = body.find(r#"id="digest_size""#).unwrap();
    let time = body.find(r#"id="send_time""#).unwrap();
    assert!(size < focus && focus < time, "digest_size has the focus");
    assert!(!body.contains(r#"aria-describedby="topics-error""#));
    assert!(body.contains("kept as typed"));

    // The subscribe form works the same way.
    let r = post(
        &t,
        &t.url("/subscribe"),
        &[
            ("email", "not an address"),
            ("topics", "RAG"),
            ("send_time", "07:30"),
            ("time_zone", "UTC"),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = r.text().await.unwrap();
    assert!(body.contains(r#"aria-invalid="true" aria-describedby="email-error" autofocus"#));
    assert!(body.contains(r#"id="email-error""#));
    t.stop().await;
}

#[tokio::test]
async fn the_time_control_reads_24_hour_and_the_weekly_day_is_asked_only_for_weekly() {
    let t = TestApp::spawn().await;
    let manage = t.subscribe_and_confirm("time@example.org").await;
    let settings = page(&t, &manage).await;
    // A text field in HH:MM, not a locale-dependent time picker.
    assert!(settings.contains(r#"id="send_time" name="send_time" type="text""#));
    assert!(settings.contains(r#"value="07:30""#));
    assert!(settings.contains("24-hour clock (HH:MM)"));
    assert!(!settings.contains(r#"type="time""#));
    // No separate day control: weekly choices carry their day.
    assert!(!settings.contains("weekly_day"));
    for day in ["Monday", "Friday", "Sunday"] {
        assert!(
            settings.contains(&format!(">Weekly, on {day}</option>")),
            "{day}"
        );
    }
    // Without script, the time zone is a list with the saved zone chosen.
    assert!(settings.contains(r#"<select id="time_zone" name="time_zone""#));
    assert!(settings.contains(r#"<option value="Europe/Berlin" selected>"#));
    let home = home(&t).await;
    assert!(home.contains(r#"<option value="UTC" selected>UTC</option>"#));
    assert!(home.contains(r#"<option value="America/New_York">New York (UTC-"#));
    t.stop().await;
}

#[tokio::test]
async fn deleting_asks_inside_the_page_with_a_way_back() {
    let t = TestApp::spawn().await;
    let manage = t.subscribe_and_confirm("del@example.org").await;
    let r = post(&t, &manage, &[("action", "delete")]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), format!("{manage}/delete"));
    let r = t.follow(r).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["referrer-policy"], "no-referrer");
    let body = r.text().await.unwrap();
    let button = body.find("Yes, delete everything").unwrap();
    let cancel = body.find("Cancel, keep my data").unwrap();
    let footer = body.find("<footer").unwrap();
    assert!(
        button < footer && cancel < footer,
        "inside the main content"
    );
    assert!(body.contains(&format!(r#"<a href="{manage}">Cancel, keep my data</a>"#)));
    assert_eq!(body.matches("</main>").count(), 1);
    assert_eq!(
        t.state_of("del@example.org").await.as_deref(),
        Some("active")
    );
    t.stop().await;
}

#[tokio::test]
async fn the_settings_preview_follows_edited_authors_and_excluded_words() {
    let now = at("2026-06-12T12:00:00Z");
    let (t, _clock) = TestApp::spawn_at(now, &[]).await;
    t.seed_hf_fixture().await;
    let manage = t.subscribe_and_confirm("parity@example.org").await;
    let preview = |query: Vec<(&'static str, String)>| {
        let url = format!("{manage}/preview");
        let t = &t;
        async move {
            let v: serde_json::Value = t
                .client
                .get(url)
                .query(&query)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["papers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["id"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    // A followed author alone fills the preview with their paper.
    let paper = &hf_fixture()[0];
    let author = paper.authors[0].clone();
    let by_author = preview(vec![("topics", String::new()), ("authors", author)]).await;
    assert!(by_author.contains(&paper.id.to_string()), "{by_author:?}");
    // An excluded word from its title takes it out again.
    let word = paper
        .title
        .split(|c: char| !c.is_alphanumeric())
        .max_by_key(|w| w.len())
        .unwrap()
        .to_string();
    let excluded = preview(vec![
        ("topics", String::new()),
        ("authors", paper.authors[0].clone()),
        ("excluded", word),
    ])
    .await;
    assert!(!excluded.contains(&paper.id.to_string()), "{excluded:?}");
    t.stop().await;
}

#[tokio::test]
async fn an_operator_template_brands_the_pages_and_a_bad_one_stops_start_up() {
    let brand = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(brand.path().join("pages")).unwrap();
    let layout = include_str!("../../templates/pages/layout.hbs").replace(
        "trending research papers, picked for you",
        "Acme Lab's paper digest",
    );
    std::fs::write(brand.path().join("pages/layout.hbs"), layout).unwrap();
    let dir = brand.path().display().to_string();
    let t = TestApp::spawn_with(&[("PAPERBOY__TEMPLATES__DIR", &dir)]).await;
    assert!(home(&t).await.contains("Acme Lab's paper digest"));
    t.stop().await;

    // Unescaped output in an override: the daemon does not start, and says
    // which file and line.
    std::fs::write(
        brand.path().join("pages/message.hbs"),
        "{{#> layout}}\n<h1>{{heading}}</h1>\n{{{link_text}}}\n{{/layout}}\n",
    )
    .unwrap();
    let data = tempfile::tempdir().unwrap();
    let config = crate::support::test_config(
        data.path(),
        None,
        "http://127.0.0.1:1",
        &[("PAPERBOY__TEMPLATES__DIR", &dir)],
    );
    let err = paperboy::app::App::build(config, Default::default())
        .await
        .unwrap_err();
    let err = format!("{err:#}");
    assert!(err.contains("pages/message.hbs:3"), "{err}");
}

/// The subscriber behind `email`.
async fn subscriber(t: &TestApp, email: &str) -> paperboy::store::subscribers::Subscriber {
    let addr = paperboy::domain::EmailAddress::parse(email).unwrap();
    t.app
        .store
        .subscriber_by_email(&addr)
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn each_topic_says_how_many_papers_it_found_in_the_last_seven_days() {
    let (t, _clock) = TestApp::spawn_at(at("2026-06-12T12:00:00Z"), &[]).await;
    t.seed_hf_fixture().await;
    // The live preview: each topic as read, with its count.
    let v = preview_json(&t, "video generation, zzqx").await;
    let topics = v["topics"].as_array().unwrap();
    assert_eq!(topics.len(), 2, "{v}");
    assert_eq!(topics[0]["topic"], "video generation");
    let found = topics[0]["count"].as_u64().unwrap();
    assert!(found >= 1, "{v}");
    assert!(topics[0]["note"]
        .as_str()
        .unwrap()
        .ends_with("in the last 7 days"));
    assert_eq!(topics[1]["topic"], "zzqx");
    assert_eq!(topics[1]["count"], 0);
    assert_eq!(topics[1]["empty"], true);
    assert_eq!(
        topics[1]["note"],
        "nothing in the last 7 days; try a broader wording"
    );
    // Every paper the preview shows for the topic is among those counted.
    let shown = preview_json(&t, "video generation").await["papers"]
        .as_array()
        .unwrap()
        .len() as u64;
    assert!(shown <= found, "{shown} shown, {found} counted");

    // The settings page says the same, without script.
    let email = "counts@example.org";
    t.subscribe(&[
        ("email", email),
        ("topics", "video generation\nzzqx"),
        ("send_time", "08:00"),
        ("time_zone", "UTC"),
    ])
    .await;
    t.client
        .post(&t.confirmation_link(email, 1).await)
        .send()
        .await
        .unwrap();
    let sub = subscriber(&t, email).await;
    let manage = t
        .app
        .links
        .manage_url(&t.app.links.manage_token(sub.id, sub.token_generation));
    let settings = page(&t, &manage).await;
    assert!(
        settings.contains(&format!(
            r#"<span class="chip">video generation</span> <span class="count">— {found} paper"#
        )),
        "{settings}"
    );
    assert!(settings.contains(
        r#"<li class="empty"><span class="chip">zzqx</span> <span class="count">— nothing in the last 7 days; try a broader wording</span>"#
    ));
    t.stop().await;
}

#[tokio::test]
async fn feedback_buttons_and_both_delete_steps_redirect_so_a_reload_posts_nothing() {
    let (t, _clock) = TestApp::spawn_at(at("2026-06-12T12:00:00Z"), &[]).await;
    t.seed_hf_fixture().await;
    let manage = t.subscribe_and_confirm("prg@example.org").await;
    let sub = subscriber(&t, "prg@example.org").await;
    let paper = hf_fixture()[0].id.clone();
    let token = t.app.links.feedback_token(
        sub.id,
        sub.token_generation,
        &paper,
        paperboy::domain::FeedbackAction::Save,
    );
    let link = t.app.links.feedback_url(&token);
    for (what, shows) in [("record", "Thank you, noted"), ("undo", "<h1>Undone</h1>")] {
        let r = post(&t, &link, &[("do", what)]).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{what}");
        assert!(location(&r).starts_with(&format!("{link}?done=")));
        assert_eq!(r.headers()["referrer-policy"], "no-referrer");
        let shown = page(&t, &location(&r)).await;
        assert!(shown.contains(shows), "{what}: {shown}");
    }
    let r = post(&t, &manage, &[("action", "delete")]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    // The confirmation step is a page of its own: reloading it is a GET.
    for _ in 0..2 {
        assert!(page(&t, &location(&r))
            .await
            .contains("Yes, delete everything"));
    }
    assert_eq!(
        t.state_of("prg@example.org").await.as_deref(),
        Some("active")
    );
    // The second step deletes, then redirects to a page that names no one.
    let r = post(&t, &manage, &[("action", "delete_confirmed")]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), t.url("/deleted"));
    assert_eq!(t.state_of("prg@example.org").await, None);
    let shown = page(&t, &location(&r)).await;
    assert!(shown.contains("Your data is deleted"), "{shown}");
    assert!(!shown.contains("prg@example.org"));
    t.stop().await;
}

#[tokio::test]
async fn the_page_after_unsubscribing_links_back_to_resume_and_to_subscribe() {
    let t = TestApp::spawn().await;
    let manage = t.subscribe_and_confirm("back@example.org").await;
    let unsubscribe = manage.replace("/manage/", "/unsubscribe/");
    let r = post(&t, &unsubscribe, &[]).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body = r.text().await.unwrap();
    assert!(body.contains("You are unsubscribed"));
    assert!(
        body.contains(&format!(
            r#"<a href="{manage}">Changed your mind? Resume from your settings page</a>"#
        )),
        "{body}"
    );
    assert!(body.contains(&format!(r#"<a href="{}">Subscribe again"#, t.url("/"))));
    // The settings page it leads to offers to subscribe again, which
    // answers like the subscribe form: a redirect to the inbox page.
    assert!(page(&t, &manage).await.contains("Subscribe again"));
    let r = post(&t, &manage, &[("action", "resubscribe")]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(location(&r).starts_with(&t.url("/subscribe/sent?r=")));
    assert!(page(&t, &location(&r)).await.contains("back@example.org"));
    assert_eq!(
        t.state_of("back@example.org").await.as_deref(),
        Some("pending")
    );
    t.stop().await;
}

#[tokio::test]
async fn the_confirmed_page_and_the_saved_notice_say_when_the_next_digest_comes() {
    // Thursday 10 December 2026, 04:00 in New York.
    let (t, clock) = TestApp::spawn_at(at("2026-12-10T09:00:00Z"), &[]).await;
    let email = "when@example.org";
    t.subscribe(&[
        ("email", email),
        ("topics", "RAG"),
        ("send_time", "07:30"),
        ("time_zone", "America/New_York"),
    ])
    .await;
    let link = t.confirmation_link(email, 1).await;
    let confirmed = t
        .client
        .post(&link)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        confirmed.contains(
            r#"Next digest: <time id="next-digest" datetime="2026-12-10T12:30:00Z" data-zone="America/New_York">Thursday 10 December, 07:30 New York time</time>"#
        ),
        "{confirmed}"
    );
    assert!(confirmed.contains("static/when.js"));
    let manage = extract_manage(&confirmed);

    // Saved as weekly on Friday: the notice says Friday.
    let saved = |frequency: &'static str, send_time: &'static str| {
        vec![
            ("action", "save"),
            ("topics", "RAG"),
            ("frequency", frequency),
            ("send_time", send_time),
            ("time_zone", "America/New_York"),
        ]
    };
    let r = t
        .manage_post(&manage, &saved("weekly:friday", "07:30"))
        .await;
    let body = r.text().await.unwrap();
    assert!(body.contains("Your settings are saved."), "{body}");
    assert!(
        body.contains("Friday 11 December, 07:30 New York time</time>"),
        "{body}"
    );
    // A send time already passed today, within the catch-up hours and with
    // no digest yet today: it goes out at the next tick.
    let r = t.manage_post(&manage, &saved("daily", "03:00")).await;
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("Next digest: <time id=\"next-digest\" data-zone=\"America/New_York\">within a few minutes</time>"));
    // Paused readers are told nothing of a next digest.
    clock.set(at("2026-12-10T10:00:00Z"));
    t.manage_post(&manage, &[("action", "pause")]).await;
    let r = t.manage_post(&manage, &saved("daily", "07:30")).await;
    assert!(!r.text().await.unwrap().contains("Next digest"));
    t.stop().await;
}

fn extract_manage(body: &str) -> String {
    crate::support::extract_links(body)
        .into_iter()
        .find(|l| l.contains("/manage/"))
        .expect("a link to the settings")
}

#[tokio::test]
async fn the_time_zone_list_is_grouped_by_region_with_offsets_and_no_old_names() {
    let (t, _clock) = TestApp::spawn_at(at("2026-01-15T12:00:00Z"), &[]).await;
    let home = home(&t).await;
    let select = &home[home.find(r#"<select id="time_zone""#).unwrap()..];
    let select = &select[..select.find("</select>").unwrap()];
    assert!(select.contains(r#"<optgroup label="Europe">"#), "{select}");
    assert!(select.contains(r#"<optgroup label="Americas">"#));
    assert!(select.contains(r#"<option value="Europe/Berlin">Berlin (UTC+01:00)</option>"#));
    assert!(select.contains(r#"<option value="Asia/Kolkata">Kolkata (UTC+05:30)</option>"#));
    assert!(select.contains(r#"<option value="America/St_Johns">St Johns (UTC-03:30)</option>"#));
    for old in [
        "Asia/Calcutta",
        "Europe/Kiev",
        "America/Buenos_Aires",
        "Etc/GMT+5",
        "US/Eastern",
    ] {
        assert!(!select.contains(&format!("\"{old}\"")), "{old} is offered");
    }
    let offered = select.matches("<option ").count();
    assert!((300..460).contains(&offered), "{offered} zones");
    // Still one plain control that posts its value without script.
    assert!(!select.contains("<script") && select.contains(r#"name="time_zone""#));
    t.stop().await;
}
