//! Each digest covers what is new since the reader's previous one (issue
//! 15): the whole engine (plan, the real ranker per window, render, SMTP
//! to the in-process sink) with the clock as a parameter, and one run of
//! the real binary for the weekly reader of the issue.

use crate::support::{test_config, SmtpSink, TestApp};
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use mail_parser::MessageParser;
use paperboy::digest::{self, WindowPickers};
use paperboy::domain::{
    EmailAddress, Frequency, Paper, PaperId, Preferences, SourceKind, SubscriberId, SubscriberState,
};
use paperboy::store::papers::PaperBatch;
use paperboy::store::subscribers::{ConsentInput, ConsentMethod};
use paperboy::store::Store;
use std::collections::BTreeSet;

// 2026-11-30 is a Monday.

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn day(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn prefs(frequency: Frequency, size: u8) -> Preferences {
    Preferences {
        topics: vec!["speculative decoding".into()],
        frequency,
        ..Preferences::new(
            size,
            NaiveTime::from_hms_opt(8, 0, 0).unwrap(),
            chrono_tz::UTC,
        )
    }
}

async fn reader(store: &Store, email: &str, prefs: &Preferences) -> SubscriberId {
    store
        .add_subscriber(
            &EmailAddress::parse(email).unwrap(),
            prefs,
            SubscriberState::Active,
            &ConsentInput {
                method: ConsentMethod::OperatorImport,
                source: "test".into(),
                consent_text_hash: "x".into(),
                ip: None,
            },
            &|id, g| format!("hash-{}-{g}", id.0),
            at("2026-11-01T00:00:00Z"),
        )
        .await
        .unwrap()
}

/// A paper matching "speculative decoding" (or not, `on_topic = false`),
/// arXiv id `2611.<n>`, listed on `listed`.
fn paper(n: u32, listed: &str, on_topic: bool) -> Paper {
    let (id, _) = PaperId::parse_arxiv(&format!("2611.{n:05}")).unwrap();
    let (title, text) = if on_topic {
        (
            format!("Speculative decoding with draft trees, variant {n}"),
            "Speculative decoding drafts tokens with a small model and verifies them.",
        )
    } else {
        (
            format!("Galaxy rotation curves, survey {n}"),
            "Observations of spiral galaxies and their dark matter halos.",
        )
    };
    let mut p = Paper::new(id, &title, text);
    p.listed_on = Some(day(listed));
    p.upvotes = Some(5 + n as i64 % 40);
    p.sources = vec![SourceKind::HuggingFace];
    p
}

/// Stores papers as one Hugging Face fetch at `observed`.
async fn list(store: &Store, papers: &[Paper], observed: &str) {
    store
        .upsert_papers(PaperBatch {
            source: SourceKind::HuggingFace,
            papers,
            observed_at: at(observed),
            validators: &[],
        })
        .await
        .unwrap();
}

fn ids(papers: &[Paper]) -> BTreeSet<String> {
    papers.iter().map(|p| p.id.to_string()).collect()
}

/// One digest run at `now` with the production picker.
async fn run(t: &TestApp, now: &str) -> digest::RunReport {
    let now = at(now);
    let picker = WindowPickers::new();
    digest::run(&t.app, &picker, now).await.unwrap()
}

/// The arXiv ids in the `nth` (1-based) digest mailed to `email`, and its
/// subject.
async fn digest_ids(t: &TestApp, email: &str, nth: usize) -> (BTreeSet<String>, String) {
    let msgs = t.sink.wait_for(email, nth).await;
    let parsed = MessageParser::default().parse(&msgs[nth - 1].data).unwrap();
    let text = parsed.body_text(0).unwrap().into_owned();
    let got = text
        .split("https://arxiv.org/abs/")
        .skip(1)
        .map(|rest| rest.split_whitespace().next().unwrap().to_string())
        .collect();
    (got, parsed.subject().unwrap_or_default().to_string())
}

#[tokio::test]
async fn a_weekly_reader_gets_the_weeks_matching_papers_and_nothing_already_sent() {
    let t = TestApp::spawn().await;
    let store = &t.app.store;
    reader(
        store,
        "weekly@example.org",
        &prefs(Frequency::Weekly(chrono::Weekday::Mon), 10),
    )
    .await;
    // Last week's digest carried these two.
    let before = [paper(1, "2026-11-22", true), paper(2, "2026-11-23", true)];
    list(store, &before, "2026-11-23T06:00:00Z").await;
    let r = run(&t, "2026-11-23T08:01:00Z").await;
    assert_eq!(r.counts.sent, 1, "{r:?}");
    assert_eq!(
        digest_ids(&t, "weekly@example.org", 1).await.0,
        ids(&before)
    );

    // The week: twelve matching papers five days before Monday, one on
    // Saturday, and an off-topic one.
    let mut week: Vec<Paper> = (10..22).map(|n| paper(n, "2026-11-25", true)).collect();
    week.push(paper(30, "2026-11-28", true));
    let off_topic = paper(40, "2026-11-25", false);
    list(store, &week, "2026-11-28T12:00:00Z").await;
    list(
        store,
        std::slice::from_ref(&off_topic),
        "2026-11-28T12:00:00Z",
    )
    .await;

    let r = run(&t, "2026-11-30T08:01:00Z").await;
    assert_eq!((r.counts.planned, r.counts.sent), (1, 1), "{r:?}");
    let (got, subject) = digest_ids(&t, "weekly@example.org", 2).await;
    assert_eq!(got.len(), 10, "the digest size still caps it: {got:?}");
    assert!(
        got.is_subset(&ids(&week)),
        "only the week's matching papers: {got:?}"
    );
    assert!(got.is_disjoint(&ids(&before)), "nothing already sent");
    assert!(subject.ends_with("this week"), "{subject}");
    let msgs = t.sink.messages_to("weekly@example.org");
    let text = String::from_utf8_lossy(&msgs[1].data).into_owned();
    assert!(text.contains("This week's papers on your topics"), "{text}");
    t.stop().await;
}

#[tokio::test]
async fn a_weekdays_reader_on_monday_gets_friday_to_sunday() {
    let t = TestApp::spawn().await;
    let store = &t.app.store;
    let id = reader(
        store,
        "weekdays@example.org",
        &prefs(Frequency::Weekdays, 1),
    )
    .await;
    // Friday's digest (one paper) leaves one of Thursday's unsent.
    let thursday = [paper(1, "2026-11-26", true), paper(2, "2026-11-26", true)];
    list(store, &thursday, "2026-11-26T12:00:00Z").await;
    assert_eq!(run(&t, "2026-11-27T08:01:00Z").await.counts.sent, 1);
    let (friday, _) = digest_ids(&t, "weekdays@example.org", 1).await;

    let weekend = [
        paper(10, "2026-11-27", true),
        paper(11, "2026-11-28", true),
        paper(12, "2026-11-29", true),
    ];
    list(store, &weekend, "2026-11-29T12:00:00Z").await;
    let mut bigger = prefs(Frequency::Weekdays, 10);
    bigger.topics = vec!["speculative decoding".into()];
    store
        .update_preferences(id, &bigger, at("2026-11-29T13:00:00Z"))
        .await
        .unwrap();
    // Nothing on Saturday or Sunday.
    assert_eq!(run(&t, "2026-11-28T08:01:00Z").await.counts.planned, 0);
    assert_eq!(run(&t, "2026-11-29T08:01:00Z").await.counts.planned, 0);

    assert_eq!(run(&t, "2026-11-30T08:01:00Z").await.counts.sent, 1);
    let (monday, subject) = digest_ids(&t, "weekdays@example.org", 2).await;
    assert_eq!(monday, ids(&weekend), "Friday to Sunday, not Thursday");
    assert!(monday.is_disjoint(&friday));
    assert!(!subject.contains("this week"), "{subject}");
    t.stop().await;
}

#[tokio::test]
async fn a_daily_reader_gets_what_the_fixed_three_day_window_gave() {
    let t = TestApp::spawn().await;
    let store = &t.app.store;
    let daily = prefs(Frequency::Daily, 10);
    reader(store, "daily@example.org", &daily).await;
    let papers = [
        paper(1, "2026-11-27", true),
        paper(2, "2026-11-28", true),
        paper(3, "2026-11-30", true),
        paper(4, "2026-12-01", true),
        paper(5, "2026-12-01", false),
    ];
    list(store, &papers, "2026-12-01T06:00:00Z").await;
    let now = at("2026-12-01T08:01:00Z");
    // What the engine picked before windows: every paper listed within
    // `digest.candidate_days` (3) of the run.
    let fixed = digest::RankPicker::for_run(&t.app, now).await.unwrap();
    let window = paperboy::domain::window(
        Frequency::Daily,
        None,
        now.date_naive(),
        t.app.config.window_limits(),
    );
    let expected: BTreeSet<String> =
        paperboy::digest::Picker::pick(&fixed, &window, &daily, &Default::default())
            .iter()
            .map(|p| p.paper.id.to_string())
            .collect();
    assert_eq!(expected, ids(&papers[1..4]));

    assert_eq!(run(&t, "2026-12-01T08:01:00Z").await.counts.sent, 1);
    let (got, subject) = digest_ids(&t, "daily@example.org", 1).await;
    assert_eq!(got, expected);
    assert_eq!(subject, "3 papers on speculative decoding");

    // The next day: only what is new.
    let next = [paper(6, "2026-12-02", true)];
    list(store, &next, "2026-12-02T06:00:00Z").await;
    assert_eq!(run(&t, "2026-12-02T08:01:00Z").await.counts.sent, 1);
    assert_eq!(digest_ids(&t, "daily@example.org", 2).await.0, ids(&next));
    t.stop().await;
}

#[tokio::test]
async fn a_reader_back_from_a_three_week_pause_gets_at_most_the_cap() {
    let t = TestApp::spawn().await;
    let store = &t.app.store;
    let id = reader(store, "paused@example.org", &prefs(Frequency::Daily, 10)).await;
    list(
        store,
        &[paper(1, "2026-11-08", true)],
        "2026-11-08T06:00:00Z",
    )
    .await;
    assert_eq!(run(&t, "2026-11-08T08:01:00Z").await.counts.sent, 1);
    store
        .set_paused(id, true, at("2026-11-08T09:00:00Z"))
        .await
        .unwrap();
    let missed = [
        paper(10, "2026-11-10", true),
        paper(11, "2026-11-17", true),
        paper(12, "2026-11-18", true),
        paper(13, "2026-11-25", true),
        paper(14, "2026-11-29", true),
    ];
    list(store, &missed, "2026-11-29T06:00:00Z").await;
    assert_eq!(
        run(&t, "2026-11-20T08:01:00Z").await.counts.planned,
        0,
        "paused"
    );
    store
        .set_paused(id, false, at("2026-11-29T20:00:00Z"))
        .await
        .unwrap();

    assert_eq!(run(&t, "2026-11-30T08:01:00Z").await.counts.sent, 1);
    let (got, _) = digest_ids(&t, "paused@example.org", 2).await;
    // digest.max_window_days = 12: 18–30 November.
    assert_eq!(got, ids(&missed[2..]), "{got:?}");
    t.stop().await;
}

#[tokio::test]
async fn changing_from_daily_to_weekly_neither_repeats_nor_skips_a_paper() {
    let t = TestApp::spawn().await;
    let store = &t.app.store;
    let id = reader(store, "switch@example.org", &prefs(Frequency::Daily, 2)).await;
    let early = [
        paper(1, "2026-11-24", true),
        paper(2, "2026-11-24", true),
        paper(3, "2026-11-25", true),
    ];
    list(store, &early, "2026-11-25T06:00:00Z").await;
    assert_eq!(run(&t, "2026-11-25T08:01:00Z").await.counts.sent, 1);
    let thursday = [paper(4, "2026-11-26", true)];
    list(store, &thursday, "2026-11-26T06:00:00Z").await;
    assert_eq!(run(&t, "2026-11-26T08:01:00Z").await.counts.sent, 1);

    // Weekly on Monday from now on, with room for the whole week.
    store
        .update_preferences(
            id,
            &prefs(Frequency::Weekly(chrono::Weekday::Mon), 20),
            at("2026-11-26T09:00:00Z"),
        )
        .await
        .unwrap();
    // Listed on Thursday after Thursday's digest, and later.
    let later = [
        paper(5, "2026-11-26", true),
        paper(6, "2026-11-27", true),
        paper(7, "2026-11-29", true),
    ];
    list(store, &later, "2026-11-29T06:00:00Z").await;
    for day in ["2026-11-27", "2026-11-28", "2026-11-29"] {
        assert_eq!(run(&t, &format!("{day}T08:01:00Z")).await.counts.planned, 0);
    }
    assert_eq!(run(&t, "2026-11-30T08:01:00Z").await.counts.sent, 1);

    let mut seen: Vec<String> = Vec::new();
    for nth in 1..=3 {
        seen.extend(digest_ids(&t, "switch@example.org", nth).await.0);
    }
    let unique: BTreeSet<String> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "no paper twice: {seen:?}");
    let all: BTreeSet<String> = ids(&early)
        .into_iter()
        .chain(ids(&thursday))
        .chain(ids(&later))
        .collect();
    assert_eq!(unique, all, "no paper skipped");
    t.stop().await;
}

/// The reader, through the real binary: weekly on Monday, with 60
/// matching papers listed five days earlier. `digest --dry-run` lists the
/// window and the papers; `digest` mails them.
#[tokio::test]
async fn the_weekly_reader_gets_the_weeks_papers_from_a_real_digest_run() {
    let dir = tempfile::tempdir().unwrap();
    let sink = SmtpSink::start();
    let config = test_config(dir.path(), Some(sink.addr), "http://127.0.0.1:9", &[]);
    let store = Store::open(&config.database).await.unwrap();
    reader(
        &store,
        "weekly@example.org",
        &prefs(Frequency::Weekly(chrono::Weekday::Mon), 10),
    )
    .await;
    let week: Vec<Paper> = (100..160).map(|n| paper(n, "2026-11-25", true)).collect();
    list(&store, &week, "2026-11-25T12:00:00Z").await;
    store.close().await;

    let binary = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_paperboy"))
            .args(args)
            .current_dir(dir.path())
            .env_remove("RUST_LOG")
            .env_remove("PAPERBOY_FAULT_INJECT")
            .env("PAPERBOY__DATABASE__PATH", &config.database.path)
            .env("PAPERBOY__MAIL__OUTBOX_DIR", dir.path().join("outbox"))
            // No test downloads a model: this one ranks lexically.
            .env("PAPERBOY__RANK__SEMANTIC__ENABLED", "false")
            .env("PAPERBOY__SERVER__BASE_URL", "http://127.0.0.1:9")
            .env("PAPERBOY__MAIL__FROM", "paperboy <digest@paperboy.test>")
            .env("PAPERBOY__MAIL__TRANSPORT", "smtp")
            .env("PAPERBOY__MAIL__SMTP__HOST", "127.0.0.1")
            .env("PAPERBOY__MAIL__SMTP__PORT", sink.addr.port().to_string())
            .env("PAPERBOY__MAIL__SMTP__TLS", "none")
            .env("PAPERBOY__SOURCES__HUGGINGFACE__ENABLED", "false")
            .env("PAPERBOY__LOGGING__LEVEL", "warn")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "paperboy {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let now = "2026-11-30T08:01:00Z";
    let dry = binary(&["digest", "--dry-run", "--now", now]);
    assert!(
        dry.contains("10 papers (listed 23 November – 30 November 2026)"),
        "{dry}"
    );
    let out = binary(&["digest", "--now", now]);
    assert!(out.contains("planned 1, sent 1,"), "{out}");
    let msgs = sink.wait_for("weekly@example.org", 1).await;
    let parsed = MessageParser::default().parse(&msgs[0].data).unwrap();
    assert_eq!(
        parsed.subject().unwrap(),
        "10 papers on speculative decoding this week"
    );
    let text = parsed.body_text(0).unwrap().into_owned();
    let got: BTreeSet<String> = text
        .split("https://arxiv.org/abs/")
        .skip(1)
        .map(|rest| rest.split_whitespace().next().unwrap().to_string())
        .collect();
    assert_eq!(got.len(), 10);
    assert!(got.is_subset(&ids(&week)));
}

/// The settings page previews the reader's next digest: their window
/// (from the last day covered), for the frequency on the form, without
/// what was already sent, and its note names the days searched.
#[tokio::test]
async fn the_settings_preview_shows_the_next_digest_for_the_chosen_frequency() {
    let (t, clock) = TestApp::spawn_at(at("2026-11-23T08:01:00Z"), &[]).await;
    let store = &t.app.store;
    let links = t.app.links.clone();
    let id = store
        .add_subscriber(
            &EmailAddress::parse("settings@example.org").unwrap(),
            &prefs(Frequency::Weekly(chrono::Weekday::Mon), 10),
            SubscriberState::Active,
            &ConsentInput {
                method: ConsentMethod::OperatorImport,
                source: "test".into(),
                consent_text_hash: "x".into(),
                ip: None,
            },
            &move |id, g| links.manage_token_hash(id, g),
            at("2026-11-01T00:00:00Z"),
        )
        .await
        .unwrap();
    let sent = [paper(1, "2026-11-23", true)];
    list(store, &sent, "2026-11-23T06:00:00Z").await;
    assert_eq!(run(&t, "2026-11-23T08:01:00Z").await.counts.sent, 1);
    let week = [paper(10, "2026-11-24", true), paper(11, "2026-11-25", true)];
    list(store, &week, "2026-11-26T06:00:00Z").await;
    // Thursday, 26 November: the next weekly digest is Monday's.
    clock.set(at("2026-11-26T12:00:00Z"));

    let sub = store.subscriber(id).await.unwrap();
    let manage = t
        .app
        .links
        .manage_url(&t.app.links.manage_token(id, sub.token_generation));
    let preview = |query: &'static str| {
        let url = format!("{manage}/preview?{query}");
        let client = t.client.clone();
        async move {
            let r = client.get(url).send().await.unwrap();
            assert_eq!(r.status(), reqwest::StatusCode::OK);
            r.json::<serde_json::Value>().await.unwrap()
        }
    };
    let got = |v: &serde_json::Value| -> BTreeSet<String> {
        v["papers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_string())
            .collect()
    };
    // The saved preferences: weekly, from the 23rd (covered last time).
    let weekly = preview("").await;
    assert_eq!(got(&weekly), ids(&week), "{weekly}");
    assert!(
        weekly["note"]
            .as_str()
            .unwrap()
            .contains("23 November – 30 November 2026"),
        "{weekly}"
    );
    // Daily chosen on the form (not saved): from the 23rd as well, since
    // that is the last day covered, up to today.
    let daily = preview("frequency=daily").await;
    assert_eq!(got(&daily), ids(&week), "{daily}");
    assert!(daily["note"]
        .as_str()
        .unwrap()
        .contains("23 November – 26 November 2026"));
    // Weekly on Friday, with typed topics that match nothing: the week
    // before Friday was searched, and the note says so.
    let none = preview("frequency=weekly&weekly_day=friday&topics=protein+folding").await;
    assert!(got(&none).is_empty());
    assert_eq!(
        none["note"],
        "Nothing listed 20 November – 27 November 2026 matches yet; your digest waits for papers that do."
    );
    // The page asks there; a bad token is refused.
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
        page.contains(&format!("{manage}/preview")),
        "the page wires its own preview"
    );
    let bad = t
        .client
        .get(t.url("/manage/not-a-token/preview"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), reqwest::StatusCode::NOT_FOUND);
    t.stop().await;
}
