use super::*;
use crate::store::test_support::temp_store;
use chrono::TimeZone;

fn id(s: &str) -> PaperId {
    PaperId::parse_arxiv(s).unwrap().0
}

fn hf(upvotes: i64) -> Paper {
    let mut p = Paper::new(id("2606.00467"), "HF title", "HF abstract");
    p.upvotes = Some(upvotes);
    p.comments = Some(1);
    p.listed_on = NaiveDate::from_ymd_opt(2026, 6, 12);
    p.github_repo = Some("https://github.com/x/y".into());
    p.sources = vec![SourceKind::HuggingFace];
    p
}

fn arxiv(version: u32, title: &str) -> Paper {
    let mut p = Paper::new(id("2606.00467"), title, "arXiv abstract");
    p.version = Some(version);
    p.categories = vec!["cs.CL".into(), "cs.LG".into()];
    p.authors = vec!["A".into()];
    p.doi = Some("10.1/x".into());
    p.sources = vec![SourceKind::ArxivFeed];
    p
}

fn t(h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 12, h, 0, 0).unwrap()
}

async fn put(store: &Store, source: SourceKind, p: Paper, at: DateTime<Utc>) -> UpsertStats {
    store
        .upsert_papers(PaperBatch {
            source,
            papers: &[p],
            observed_at: at,
            validators: &[],
        })
        .await
        .unwrap()
}

#[test]
fn hf_text_never_overwrites_arxiv_text_but_fills_gaps() {
    let stored = arxiv(2, "arXiv title");
    let (m, src) = merge_paper(
        &stored,
        SourceKind::ArxivFeed,
        &hf(5),
        SourceKind::HuggingFace,
    );
    assert_eq!(
        (m.title.as_str(), m.abstract_text.as_str()),
        ("arXiv title", "arXiv abstract")
    );
    assert_eq!(src, SourceKind::ArxivFeed);
    assert_eq!((m.upvotes, m.version), (Some(5), Some(2)));
    assert_eq!(m.categories, vec!["cs.CL", "cs.LG"]);
    assert_eq!(
        m.sources,
        vec![SourceKind::HuggingFace, SourceKind::ArxivFeed]
    );
}

#[test]
fn an_older_arxiv_version_does_not_replace_newer_text() {
    let stored = arxiv(3, "v3 title");
    let (m, _) = merge_paper(
        &stored,
        SourceKind::ArxivFeed,
        &arxiv(1, "v1 title"),
        SourceKind::ArxivApi,
    );
    assert_eq!((m.title.as_str(), m.version), ("v3 title", Some(3)));
}

#[test]
fn a_replacement_without_listing_day_keeps_the_listing_day() {
    let (stored, _) = merge_paper(
        &hf(1),
        SourceKind::HuggingFace,
        &hf(1),
        SourceKind::HuggingFace,
    );
    let (m, _) = merge_paper(
        &stored,
        SourceKind::HuggingFace,
        &arxiv(2, "v2"),
        SourceKind::ArxivFeed,
    );
    assert_eq!(m.listed_on, NaiveDate::from_ymd_opt(2026, 6, 12));
    assert_eq!(m.title, "v2");
}

#[tokio::test]
async fn hf_and_arxiv_records_of_one_id_become_one_row() {
    let (store, _dir) = temp_store().await;
    put(&store, SourceKind::HuggingFace, hf(3), t(1)).await;
    let s = put(&store, SourceKind::ArxivFeed, arxiv(1, "Real title"), t(2)).await;
    assert_eq!((s.inserted, s.updated), (0, 1));
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM papers")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(n, 1);
    let p = store.paper(&id("2606.00467")).await.unwrap().unwrap();
    assert_eq!(p.upvotes, Some(3));
    assert_eq!(p.categories, vec!["cs.CL", "cs.LG"]);
    assert_eq!(p.title, "Real title");
    assert_eq!(p.github_repo.as_deref(), Some("https://github.com/x/y"));
    assert_eq!(p.doi.as_deref(), Some("10.1/x"));
}

#[tokio::test]
async fn unchanged_counts_are_recorded_only_after_the_heartbeat() {
    let (store, _dir) = temp_store().await;
    assert_eq!(
        put(&store, SourceKind::HuggingFace, hf(3), t(0))
            .await
            .observations,
        1
    );
    let again = put(&store, SourceKind::HuggingFace, hf(3), t(1)).await;
    assert_eq!(
        (again.observations, again.updated, again.unchanged),
        (0, 0, 1)
    );
    assert_eq!(
        put(&store, SourceKind::HuggingFace, hf(4), t(2))
            .await
            .observations,
        1
    );
    assert_eq!(
        put(&store, SourceKind::HuggingFace, hf(4), t(7))
            .await
            .observations,
        0
    );
    assert_eq!(
        put(&store, SourceKind::HuggingFace, hf(4), t(8))
            .await
            .observations,
        1
    );
    let h = store.upvote_history(&id("2606.00467")).await.unwrap();
    let got: Vec<(DateTime<Utc>, i64)> = h.iter().map(|o| (o.at, o.upvotes)).collect();
    assert_eq!(got, vec![(t(0), 3), (t(2), 4), (t(8), 4)]);
}

#[tokio::test]
async fn candidates_carry_their_history_oldest_first() {
    let (store, _dir) = temp_store().await;
    put(&store, SourceKind::HuggingFace, hf(1), t(0)).await;
    put(&store, SourceKind::HuggingFace, hf(9), t(3)).await;
    let mut old = arxiv(1, "old");
    old.id = id("2606.00001");
    old.listed_on = NaiveDate::from_ymd_opt(2026, 6, 1);
    put(&store, SourceKind::ArxivFeed, old, t(3)).await;
    let c = store
        .candidates(NaiveDate::from_ymd_opt(2026, 6, 10).unwrap())
        .await
        .unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!(
        c[0].history.iter().map(|o| o.upvotes).collect::<Vec<_>>(),
        vec![1, 9]
    );
    let window = |since, until| Window {
        since: NaiveDate::from_ymd_opt(2026, 6, since).unwrap(),
        until: NaiveDate::from_ymd_opt(2026, 6, until).unwrap(),
    };
    let listed = |c: Vec<Candidate>| c.into_iter().map(|c| c.paper.id).collect::<Vec<_>>();
    let in_window = |since, until| {
        let w = window(since, until);
        let store = &store;
        async move { store.candidates_in(&w).await.unwrap() }
    };
    assert_eq!(listed(in_window(1, 1).await), vec![id("2606.00001")]);
    assert_eq!(in_window(1, 12).await.len(), 2);
    assert_eq!(in_window(12, 12).await[0].history.len(), 2);
    assert!(in_window(2, 11).await.is_empty());
    assert_eq!(
        store
            .papers_listed_on(NaiveDate::from_ymd_opt(2026, 6, 12).unwrap())
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn the_fetch_log_reports_the_last_success_per_source() {
    let (store, _dir) = temp_store().await;
    assert_eq!(store.last_fetch().await.unwrap(), None);
    let e = |source: &str, h, ok| FetchLogEntry {
        source: source.into(),
        started_at: t(h),
        finished_at: t(h),
        ok,
        error: (!ok).then(|| "boom".to_string()),
        parsed: 1,
        inserted: 1,
        updated: 0,
        observations: 0,
    };
    store
        .record_fetch(&e("huggingface", 1, true))
        .await
        .unwrap();
    store
        .record_fetch(&e("huggingface", 2, false))
        .await
        .unwrap();
    store.record_fetch(&e("arxiv", 3, false)).await.unwrap();
    assert_eq!(store.last_fetch().await.unwrap(), Some(t(1)));
    let latest = store.latest_fetches().await.unwrap();
    assert_eq!(latest.len(), 2);
    assert!(latest.iter().all(|e| !e.ok));
}
