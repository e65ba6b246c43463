//! Listing sources: every recorded fixture parsed with exact values, the
//! full fetch path against wiremock, merging, and parser robustness.

use chrono::{DateTime, NaiveDate, TimeDelta, TimeZone, Utc};
use paperboy::config::{Config, SourcesConfig};
use paperboy::domain::Synchronous;
use paperboy::domain::{PaperId, SourceKind};
use paperboy::sources::{
    parse_arxiv_api, parse_arxiv_atom_feed, parse_arxiv_rss, parse_hf, AnnounceType, ClientTuning,
    FetchRequest, Fetcher, Outcome, SourceError, SourceName,
};
use paperboy::store::Store;
use paperboy::store::StoreOptions;
use proptest::prelude::*;
use std::time::{Duration, Instant};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

// ---------------------------------------------------------------- helpers

fn fixture(name: &str) -> Vec<u8> {
    let p = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

const HF_2026: &str = "hf_daily_papers_2026-06-12.json";
const HF_LEGACY: &str = "hf_daily_papers_2024-10-25.legacy.trimmed.json";
const RSS_MULTI: &str = "arxiv_rss_multi-archive_2024-11-28.trimmed.xml";
const RSS_EMPTY: &str = "arxiv_rss_test_empty_2024-11-28.xml";
const RSS_ERROR: &str = "arxiv_rss_error_bad-archive_2024-11-28.xml";
const API_2026: &str = "arxiv_api_all-transformer_AND_cat-cs.LG_2026-06-14.atom.xml";
const API_NEW: &str = "arxiv_api_all-electron_AND_all-proton_2025-11-11.atom.xml";
const API_LEGACY: &str = "arxiv_api_all-electron_AND_all-proton_2025-08-20.legacy.atom.xml";
const API_MISSING_NEW: &str = "arxiv_api_id_list_with_missing_ids_2025-11-11.atom.xml";
const API_MISSING_LEGACY: &str = "arxiv_api_id_list_with_missing_ids_2025-08-24.legacy.atom.xml";
const API_NONE_NEW: &str = "arxiv_api_id_list_nonexistent_id_2025-11-11.atom.xml";
const API_NONE_LEGACY: &str = "arxiv_api_id_list_nonexistent_id_2025-08-20.legacy.atom.xml";
const S2: &str = "semantic_scholar_paper_search_transformer_2026-06-13.json";

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn id(s: &str) -> PaperId {
    PaperId::parse_arxiv(s).unwrap().0
}

/// 2026-06-12 09:00 UTC: the day of the HF fixture.
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 12, 9, 0, 0).unwrap()
}

async fn temp_store() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreOptions {
        path: dir.path().join("papers.sqlite"),
        busy_timeout: Duration::from_secs(10),
        max_connections: 4,
        synchronous: Synchronous::Normal,
    };
    (Store::open(cfg).await.unwrap(), dir)
}

/// Defaults from `config/default.toml`, pointed at `server`, with short
/// timeouts so failure paths stay fast.
fn config(server: &MockServer) -> SourcesConfig {
    let mut c = Config::load_with_env(None, std::iter::empty())
        .unwrap()
        .sources;
    c.contact = "ops@example.org".into();
    c.timeout = Duration::from_secs(1);
    c.connect_timeout = Duration::from_secs(1);
    c.max_retries = 2;
    c.huggingface.base_url = server.uri().parse().unwrap();
    c.huggingface.page_size = 100;
    c.huggingface.refresh_days = 0;
    c.arxiv.enabled = true;
    c.arxiv.categories = vec!["cs.LG".into(), "cs.CL".into()];
    c.arxiv.feed_base_url = server.uri().parse().unwrap();
    c.arxiv.api_base_url = server.uri().parse().unwrap();
    c
}

fn fast() -> ClientTuning {
    ClientTuning {
        backoff_base: Duration::from_millis(10),
        backoff_cap: Duration::from_millis(40),
        retry_after_cap: Duration::from_secs(2),
        host_min_interval: Duration::ZERO,
        arxiv_min_interval: Some(Duration::ZERO),
        block_period: Duration::from_secs(600),
    }
}

fn fetcher(cfg: &SourcesConfig, store: &Store) -> Fetcher {
    Fetcher::with_tuning(cfg, store.clone(), fast()).unwrap()
}

fn json(body: Vec<u8>) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(body, "application/json")
}

fn rss(body: Vec<u8>) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(body, "application/rss+xml")
}

fn atom(body: Vec<u8>) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(body, "application/atom+xml")
}

/// Items `range` of the 2026 HF fixture as a JSON array.
fn hf_slice(range: std::ops::Range<usize>) -> Vec<u8> {
    let all: Vec<serde_json::Value> = serde_json::from_slice(&fixture(HF_2026)).unwrap();
    serde_json::to_vec(&all[range].to_vec()).unwrap()
}

fn hf_req(date: &str) -> FetchRequest {
    FetchRequest {
        source: Some(SourceName::HuggingFace),
        date: Some(NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap()),
    }
}

async fn count(store: &Store, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(store.pool())
        .await
        .unwrap()
}

fn failed_kind(o: &Outcome) -> &'static str {
    match o {
        Outcome::Failed { kind, .. } => kind,
        other => panic!("expected a failure, got {other:?}"),
    }
}

/// A one-entry export-API document in the new format.
fn api_doc(entries: &[(&str, &str, &[&str])]) -> Vec<u8> {
    let mut s = String::from(
        r#"<?xml version='1.0' encoding='UTF-8'?>
<feed xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/" xmlns:arxiv="http://arxiv.org/schemas/atom" xmlns="http://www.w3.org/2005/Atom">
  <id>https://arxiv.org/api/x</id><title>arXiv Query</title>
"#,
    );
    s += &format!(
        "<opensearch:totalResults>{}</opensearch:totalResults>\n",
        entries.len()
    );
    for (versioned, title, cats) in entries {
        s += &format!(
            "<entry><id>http://arxiv.org/abs/{versioned}</id><title>{title}</title>\
             <summary>  The arXiv abstract of {versioned}.</summary>\
             <published>2026-05-29T17:00:00Z</published>\
             <author><name>First Author</name></author><author><name>Second Author</name></author>\
             <arxiv:primary_category term=\"{}\"/>",
            cats[0]
        );
        for c in *cats {
            s += &format!("<category term=\"{c}\" scheme=\"http://arxiv.org/schemas/atom\"/>");
        }
        s += "<arxiv:doi>10.1000/example</arxiv:doi></entry>\n";
    }
    s += "</feed>\n";
    s.into_bytes()
}

// ------------------------------------------------- fixtures, exact values

#[test]
fn hf_current_fixture_parses_with_exact_values() {
    let papers = parse_hf(&fixture(HF_2026), None).unwrap();
    assert_eq!(papers.len(), 30);
    let p = &papers[0];
    assert_eq!((p.id.as_str(), p.version), ("2606.00467", None));
    assert_eq!((p.upvotes, p.comments), (Some(0), Some(2)));
    assert_eq!(p.authors.len(), 3);
    assert_eq!(p.authors[0], "Etienne Casanova");
    assert_eq!(p.authors[2], "R. Michael Alvarez");
    assert_eq!(p.listed_on, Some(day(2026, 6, 12)));
    assert_eq!(
        p.published,
        Some(Utc.with_ymd_and_hms(2026, 5, 30, 0, 0, 0).unwrap())
    );
    assert_eq!(p.ai_keywords.len(), 14);
    assert_eq!(p.ai_keywords[0], "zero-shot annotation");
    assert_eq!(
        p.organization.as_deref(),
        Some("California institute of technology")
    );
    assert!(p
        .ai_summary
        .as_deref()
        .unwrap()
        .starts_with("Large language models exhibit"));
    assert_eq!(p.sources, vec![SourceKind::HuggingFace]);
    assert!(p.categories.is_empty(), "HF has no categories");

    let by = |s: &str| papers.iter().find(|p| p.id.as_str() == s).unwrap();
    assert_eq!(by("2606.13681").upvotes, Some(118));
    assert_eq!(
        by("2606.12730").github_repo.as_deref(),
        Some("https://github.com/psychology-of-AI/Rethinking-Pyschometric-Eval-LLMs")
    );
    assert_eq!(
        papers.iter().filter(|p| p.github_repo.is_some()).count(),
        16
    );
    assert_eq!(
        papers.iter().filter(|p| p.organization.is_some()).count(),
        16
    );
    // One author of 2606.12575 is hidden and must not appear.
    let hidden = by("2606.12575");
    assert_eq!(hidden.authors.len(), 9);
    assert!(!hidden.authors.iter().any(|a| a == "Dengyang Jiang"));
    // Abstracts that kept hard wraps come out as one line.
    for wrapped in ["2606.09446", "2606.13120"] {
        assert!(!by(wrapped).abstract_text.contains('\n'), "{wrapped}");
    }
    assert!(papers.iter().all(|p| p.listed_on == Some(day(2026, 6, 12))));
}

#[test]
fn hf_legacy_fixture_falls_back_for_the_listing_day_and_unwraps_titles() {
    let papers = parse_hf(&fixture(HF_LEGACY), None).unwrap();
    assert_eq!(papers.len(), 2);
    let p = &papers[0];
    assert_eq!(p.id.as_str(), "2410.17243");
    assert_eq!(
        p.title,
        "Breaking the Memory Barrier: Near Infinite Batch Size Scaling for Contrastive Loss"
    );
    assert!(!p.abstract_text.contains('\n'));
    assert_eq!((p.upvotes, p.comments), (Some(64), Some(3)));
    assert_eq!(p.authors.len(), 9);
    assert_eq!(p.authors[0], "Zesen Cheng");
    // No submittedOnDailyAt: the item publishedAt (submission to Daily
    // Papers, 2024-10-25T00:57Z) gives the day.
    assert_eq!(p.listed_on, Some(day(2024, 10, 25)));
    assert_eq!(
        p.published,
        Some(Utc.with_ymd_and_hms(2024, 10, 22, 17, 59, 30).unwrap())
    );
    assert!(p.ai_keywords.is_empty() && p.ai_summary.is_none());
    assert_eq!(
        (papers[1].id.as_str(), papers[1].upvotes),
        ("2410.16251", Some(41))
    );
    // A requested day wins over the legacy publishedAt.
    let asked = parse_hf(&fixture(HF_LEGACY), Some(day(2024, 10, 24))).unwrap();
    assert_eq!(asked[0].listed_on, Some(day(2024, 10, 24)));
}

#[test]
fn arxiv_rss_fixture_parses_announce_types_ids_and_extensions() {
    let feed = parse_arxiv_rss(&fixture(RSS_MULTI)).unwrap();
    assert_eq!(feed.announced_on, Some(day(2024, 11, 28)));
    assert_eq!(feed.items.len(), 40);
    let n = |t| feed.items.iter().filter(|i| i.announce == t).count();
    assert_eq!(
        (
            n(AnnounceType::New),
            n(AnnounceType::Cross),
            n(AnnounceType::Replace)
        ),
        (20, 9, 11)
    );
    let first = &feed.items[0].paper;
    assert_eq!((first.id.as_str(), first.version), ("2411.17700", Some(1)));
    assert_eq!(first.categories, vec!["cs.CY"]);
    assert_eq!(first.authors, vec!["Jun Cui"]);
    assert!(first
        .title
        .starts_with("Exploring the Impact of Generative AI"));
    assert!(first.abstract_text.starts_with("This study investigates"));
    assert!(!first.abstract_text.contains("Announce Type"));

    let by = |s: &str| {
        feed.items
            .iter()
            .find(|i| i.paper.id.as_str() == s)
            .unwrap()
    };
    let cross = by("2202.06515");
    assert_eq!(
        (cross.announce, cross.paper.version),
        (AnnounceType::Cross, Some(3))
    );
    assert_eq!(
        cross.paper.categories,
        vec!["astro-ph.CO", "astro-ph.GA", "physics.flu-dyn"]
    );
    assert_eq!(cross.paper.listed_on, Some(day(2024, 11, 28)));
    let five = by("2405.12090");
    assert_eq!(
        five.paper.authors,
        vec![
            "Bojan Nikolic",
            "Christopher L. Carilli",
            "Nithyanandan Thyagarajan",
            "Laura Torino",
            "Ubaldo Iriso"
        ]
    );
    let doi = by("2411.17758");
    assert_eq!(
        doi.paper.doi.as_deref(),
        Some("10.1016/j.segan.2024.101477")
    );
    assert_eq!(
        doi.paper.journal_ref.as_deref(),
        Some("Sustainable Energy, Grids and Networks, Volume 39, 2024, 101477, ISSN 2352-4677")
    );
    assert_eq!(
        doi.paper.authors,
        vec!["Kamil Erdayandi", "Mustafa Asan Mustafa"]
    );
    assert_eq!(
        feed.items.iter().filter(|i| i.paper.doi.is_some()).count(),
        8
    );
    assert_eq!(
        feed.items
            .iter()
            .filter(|i| i.paper.journal_ref.is_some())
            .count(),
        8
    );
    // A replacement is not a listing: no listing day.
    let rep = by("1901.01108");
    assert_eq!(
        (rep.announce, rep.paper.version, rep.paper.listed_on),
        (AnnounceType::Replace, Some(5), None)
    );
    // Raw TeX stays text.
    assert!(
        feed.items
            .iter()
            .filter(|i| i.paper.abstract_text.contains('$'))
            .count()
            >= 5
    );
}

#[test]
fn an_empty_arxiv_feed_is_normal() {
    let feed = parse_arxiv_rss(&fixture(RSS_EMPTY)).unwrap();
    assert!(feed.items.is_empty());
    assert_eq!(feed.announced_on, Some(day(2024, 11, 28)));
}

#[test]
fn an_arxiv_error_feed_is_an_upstream_error_with_arxivs_message() {
    let err = parse_arxiv_rss(&fixture(RSS_ERROR)).unwrap_err();
    assert!(matches!(err, SourceError::Upstream(_)), "{err:?}");
    assert!(err.to_string().contains("Bad archive 'astroph'"), "{err}");
}

#[test]
fn arxiv_atom_feed_built_from_the_specification_parses() {
    let doc = br#"<?xml version='1.0' encoding='UTF-8'?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:arxiv="http://arxiv.org/schemas/atom" xmlns:dc="http://purl.org/dc/elements/1.1/">
  <id>http://rss.arxiv.org/atom/cs.AI</id><title>cs.AI updates on arXiv.org</title>
  <updated>2024-02-23T16:08:30.941605+00:00</updated>
  <link href="http://rss.arxiv.org/atom/cs.AI" rel="self" type="application/atom+xml"/>
  <subtitle>cs.AI updates on the arXiv.org e-print archive.</subtitle>
  <entry>
    <id>oai:arXiv.org:2402.14001v2</id>
    <title>Agents &amp; Tools: a  Survey</title>
    <updated>2024-02-23T16:08:30.941605+00:00</updated>
    <link href="https://arxiv.org/abs/2402.14001" rel="alternate" type="text/html"/>
    <summary>arXiv:2402.14001v2 Announce Type: replace-cross 
Abstract: We survey $&lt;$agents$&gt;$.</summary>
    <category term="cs.AI"/><category term="cs.LG"/>
    <published>2024-02-23T00:00:00-05:00</published>
    <arxiv:announce_type>replace-cross</arxiv:announce_type>
    <dc:rights>http://creativecommons.org/licenses/by/4.0/</dc:rights>
    <dc:creator>Aleteia Araujo (University of Brasilia Brazil, The University of Melbourne Australia), Breno Costa (UnB, Brazil), Benjamin R\'emy</dc:creator>
    <arxiv:journal_reference>J. Agents 1, 2 (2024)</arxiv:journal_reference>
    <arxiv:DOI>10.1000/agents</arxiv:DOI>
  </entry>
  <entry>
    <id>oai:arXiv.org:hep-th/9901001v1</id><title>Old</title>
    <summary>arXiv:hep-th/9901001v1 Announce Type: new 
Abstract: Old style.</summary>
    <category term="hep-th"/><published>2024-02-23T00:00:00-05:00</published>
    <arxiv:announce_type>new</arxiv:announce_type><dc:creator>A. Author</dc:creator>
  </entry>
</feed>"#;
    let feed = parse_arxiv_atom_feed(doc).unwrap();
    assert_eq!(feed.items.len(), 2);
    let p = &feed.items[0].paper;
    assert_eq!((p.id.as_str(), p.version), ("2402.14001", Some(2)));
    assert_eq!(feed.items[0].announce, AnnounceType::ReplaceCross);
    assert_eq!(p.title, "Agents & Tools: a Survey");
    assert_eq!(p.abstract_text, "We survey $<$agents$>$.");
    assert_eq!(
        p.authors,
        vec!["Aleteia Araujo", "Breno Costa", "Benjamin R\\'emy"]
    );
    assert_eq!(p.categories, vec!["cs.AI", "cs.LG"]);
    assert_eq!(
        (p.doi.as_deref(), p.journal_ref.as_deref()),
        (Some("10.1000/agents"), Some("J. Agents 1, 2 (2024)"))
    );
    assert_eq!(p.listed_on, None, "a replacement is not a listing");
    let old = &feed.items[1].paper;
    assert_eq!(
        (old.id.as_str(), old.version, old.listed_on),
        ("hep-th/9901001", Some(1), Some(day(2024, 2, 23)))
    );
}

#[test]
fn arxiv_api_current_fixture_parses_with_primary_category_first() {
    let page = parse_arxiv_api(&fixture(API_2026)).unwrap();
    assert_eq!(
        (page.total_results, page.papers.len(), page.ghosts),
        (Some(28946), 5, 0)
    );
    let p = &page.papers[0];
    assert_eq!((p.id.as_str(), p.version), ("2606.13677", Some(1)));
    assert_eq!(p.title, "Mana: Dexterous Manipulation of Articulated Tools");
    assert_eq!(p.categories, vec!["cs.RO", "cs.AI", "cs.CV", "cs.LG"]);
    assert_eq!(p.authors.len(), 4);
    assert_eq!(p.authors[0], "Zhao-Heng Yin");
    assert_eq!(
        p.published,
        Some(Utc.with_ymd_and_hms(2026, 6, 11, 17, 59, 49).unwrap())
    );
    assert_eq!(p.listed_on, None, "API results are metadata, not listings");
    assert_eq!(page.papers[4].categories, vec!["cs.DC", "cs.LG", "cs.PF"]);
    assert_eq!(page.papers[4].authors.len(), 9);
}

#[test]
fn arxiv_api_fixture_after_the_backend_change_keeps_old_style_ids_and_dois() {
    let page = parse_arxiv_api(&fixture(API_NEW)).unwrap();
    assert_eq!((page.total_results, page.papers.len()), (Some(7432), 10));
    let p = &page.papers[0];
    assert_eq!((p.id.as_str(), p.version), ("nucl-ex/0408020", Some(1)));
    assert_eq!(p.categories, vec!["nucl-ex", "hep-ph"]);
    assert_eq!(p.authors.len(), 9);
    assert_eq!(p.authors[8], "H. de Vries");
    let q = &page.papers[1];
    assert_eq!(q.id.as_str(), "1309.4668");
    assert_eq!(q.doi.as_deref(), Some("10.5170/CERN-2013-002.237"));
    assert_eq!(
        q.journal_ref.as_deref(),
        Some("CERN Yellow Report CERN-2013-002, pp.237-240")
    );
    assert_eq!(
        (page.papers[3].id.as_str(), page.papers[3].version),
        ("1610.08734", Some(3))
    );
    assert_eq!(
        page.papers[3].categories,
        vec!["physics.acc-ph", "physics.plasm-ph"]
    );
    assert_eq!(
        (page.papers[7].id.as_str(), page.papers[7].version),
        ("nucl-th/9910021", Some(3))
    );
}

#[test]
fn arxiv_api_legacy_fixture_parses_with_wrapped_text_collapsed() {
    let page = parse_arxiv_api(&fixture(API_LEGACY)).unwrap();
    assert_eq!((page.total_results, page.papers.len()), (Some(7370), 10));
    assert_eq!(page.papers[0].id.as_str(), "astro-ph/9904306");
    assert_eq!(page.papers[1].id.as_str(), "hep-ph/9411242");
    assert_eq!(page.papers[1].authors, vec!["Raimo Vuopionperä"]);
    let p = &page.papers[2];
    assert_eq!((p.id.as_str(), p.version), ("1706.01836", Some(2)));
    assert_eq!(p.categories, vec!["physics.chem-ph"]);
    assert_eq!(p.doi.as_deref(), Some("10.1063/1.4996038"));
    for p in &page.papers {
        assert!(
            !p.title.contains('\n') && !p.title.contains("  "),
            "{}",
            p.title
        );
        assert!(!p.abstract_text.starts_with(' ') && !p.abstract_text.contains('\n'));
    }
    assert_eq!(
        page.papers[5].categories,
        vec!["cond-mat.other", "physics.bio-ph", "q-bio.SC"]
    );
}

#[test]
fn arxiv_api_ghost_entries_for_missing_ids_are_skipped_in_both_generations() {
    let legacy = parse_arxiv_api(&fixture(API_MISSING_LEGACY)).unwrap();
    assert_eq!(
        (legacy.total_results, legacy.papers.len(), legacy.ghosts),
        (Some(4), 1, 3)
    );
    let p = &legacy.papers[0];
    assert_eq!((p.id.as_str(), p.version), ("2201.13452", Some(1)));
    assert_eq!(p.categories, vec!["math.AP"], "the MSC term 35 is dropped");
    assert_eq!(p.authors, vec!["Hong-Ming Yin", "Jun Zou"]);
    assert_eq!(
        p.title,
        "Asymptotic Analysis for a Nonlinear Reaction-Diffusion System Modeling an Infectious Disease"
    );
    let new = parse_arxiv_api(&fixture(API_MISSING_NEW)).unwrap();
    assert_eq!(
        (new.total_results, new.papers.len(), new.ghosts),
        (Some(1), 1, 0)
    );
    assert_eq!(new.papers[0].id.as_str(), "2201.13452");
}

#[test]
fn arxiv_api_nonexistent_ids_give_no_papers_in_both_generations() {
    let new = parse_arxiv_api(&fixture(API_NONE_NEW)).unwrap();
    assert_eq!((new.total_results, new.papers.len()), (Some(0), 0));
    // The legacy backend claimed one result and sent none.
    let legacy = parse_arxiv_api(&fixture(API_NONE_LEGACY)).unwrap();
    assert_eq!((legacy.total_results, legacy.papers.len()), (Some(1), 0));
}

#[test]
fn payloads_of_another_format_are_rejected_not_read_as_empty() {
    let s2 = parse_hf(&fixture(S2), None).unwrap_err();
    assert!(matches!(s2, SourceError::Malformed { .. }), "{s2:?}");
    assert!(matches!(
        parse_arxiv_api(&fixture(RSS_MULTI)),
        Err(SourceError::Malformed { .. })
    ));
    assert!(matches!(
        parse_arxiv_rss(&fixture(API_NEW)),
        Err(SourceError::Malformed { .. })
    ));
    assert!(matches!(
        parse_arxiv_atom_feed(&fixture(RSS_EMPTY)),
        Err(SourceError::Malformed { .. })
    ));
    assert!(matches!(
        parse_hf(&fixture(RSS_MULTI), None),
        Err(SourceError::Malformed { .. })
    ));
}

#[test]
fn truncated_fixtures_are_always_rejected() {
    for name in [
        HF_2026,
        HF_LEGACY,
        RSS_MULTI,
        RSS_EMPTY,
        API_2026,
        API_NEW,
        API_LEGACY,
        API_MISSING_LEGACY,
    ] {
        let full = fixture(name);
        let end = full.iter().rposition(|b| !b.is_ascii_whitespace()).unwrap();
        for cut in [0, 1, end / 7, end / 3, end / 2, end - 1, end] {
            let part = &full[..cut];
            let rejected = if name.ends_with(".json") {
                parse_hf(part, None).is_err()
            } else if name.starts_with("arxiv_rss") {
                parse_arxiv_rss(part).is_err()
            } else {
                parse_arxiv_api(part).is_err()
            };
            assert!(rejected, "{name} cut at {cut} of {}", full.len());
        }
    }
}

// ----------------------------------------------------- robustness (proptest)

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_any_parser(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = parse_hf(&bytes, None);
        let _ = parse_arxiv_rss(&bytes);
        let _ = parse_arxiv_atom_feed(&bytes);
        let _ = parse_arxiv_api(&bytes);
    }

    #[test]
    fn corrupted_fixtures_never_panic_any_parser(
        which in 0usize..6,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let names = [HF_LEGACY, RSS_MULTI, RSS_ERROR, API_2026, API_LEGACY, API_MISSING_LEGACY];
        let mut bytes = fixture(names[which]);
        for (at, b) in edits {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        let len = cut.index(bytes.len() + 1);
        bytes.truncate(len);
        let _ = parse_hf(&bytes, None);
        let _ = parse_arxiv_rss(&bytes);
        let _ = parse_arxiv_atom_feed(&bytes);
        let _ = parse_arxiv_api(&bytes);
    }
}

// -------------------------------------------------- full fetch path (wiremock)

#[tokio::test]
async fn hf_pagination_stops_when_a_page_is_short() {
    let server = MockServer::start().await;
    let (store, _dir) = temp_store().await;
    let mut cfg = config(&server);
    cfg.huggingface.page_size = 10;
    for (p, range) in [("0", 0..10), ("1", 10..20), ("2", 20..25)] {
        Mock::given(method("GET"))
            .and(path("/api/daily_papers"))
            .and(query_param("date", "2026-06-12"))
            .and(query_param("limit", "10"))
            .and(query_param("p", p))
            .respond_with(json(hf_slice(range)))
            .expect(1)
            .mount(&server)
            .await;
    }
    Mock::given(query_param("p", "3"))
        .respond_with(json(b"[]".to_vec()))
        .expect(0)
        .mount(&server)
        .await;

    let report = fetcher(&cfg, &store)
        .fetch(hf_req("2026-06-12"), t0())
        .await;

    let r = &report.sources[0];
    assert!(report.is_ok(), "{report}");
    assert_eq!(
        (r.parsed, r.inserted, r.requests, r.observations),
        (25, 25, 3, 25)
    );
    assert_eq!(store.papers_listed_on(day(2026, 6, 12)).await.unwrap(), 25);
}

#[tokio::test]
async fn hf_pagination_stops_at_an_empty_page() {
    let server = MockServer::start().await;
    let (store, _dir) = temp_store().await;
    let mut cfg = config(&server);
    cfg.huggingface.page_size = 15;
    for (p, body) in [
        ("0", hf_slice(0..15)),
        ("1", hf_slice(15..30)),
        ("2", b"[]".to_vec()),
    ] {
        Mock::given(path("/api/daily_papers"))
            .and(query_param("p", p))
            .respond_with(json(body))
            .expect(1)
            .mount(&server)
            .await;
    }
    let report = fetcher(&cfg, &store)
        .fetch(hf_req("2026-06-12"), t0())
        .await;
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.sources[0].inserted, 30);
}

#[tokio::test]
async fn requests_carry_a_user_agent_naming_paperboy_and_the_contact() {
    let server = MockServer::start().await;
    let (store, _dir) = temp_store().await;
    let ua = format!("paperboy/{} (+ops@example.org)", env!("CARGO_PKG_VERSION"));
    Mock::given(header("user-agent", ua.as_str()))
        .respond_with(json(hf_slice(0..3)))
        .expect(1)
        .mount(&server)
        .await;
    let report = fetcher(&config(&server), &store)
        .fetch(hf_req("2026-06-12"), t0())
        .await;
    assert!(report.is_ok(), "{report}");
}

#[tokio::test]
async fn a_304_reuses_stored_validators_and_changes_nothing() {
    let server = MockServer::start().await;
    let (store, _dir) = temp_store().await;
    let cfg = config(&server);
    Mock::given(header("if-none-match", "\"v1\""))
        .respond_with(ResponseTemplate::new(304))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/api/daily_papers"))
        .respond_with(json(fixture(HF_2026)).insert_header("etag", "\"v1\""))
        .expect(1)
        .mount(&server)
        .await;
    let f = fetcher(&cfg, &store);
    let first = f.fetch(hf_req("2026-06-12"), t0()).await;
    assert_eq!(first.sources[0].inserted, 30);
    // A second fetcher proves the validators come from the database.
    let f2 = fetcher(&cfg, &store);
    let second = f2
        .fetch(hf_req("2026-06-12"), t0() + TimeDelta::hours(1))
        .await;
    let r = &second.sources[0];
    assert!(r.is_ok(), "{second}");
    assert_eq!(
        (
            r.not_modified,
            r.parsed,
            r.inserted,
            r.updated,
            r.observations
        ),
        (1, 0, 0, 0, 0)
    );
}

#[tokio::test]
async fn a_429_with_retry_after_is_waited_out_then_retried() {
    let server = MockServer::start().await;
    let (store, _dir) = temp_store().await;
    Mock::given(path("/api/daily_papers"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "1"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/api/daily_papers"))
        .respond_with(json(hf_slice(0..5)))
        .expect(1)
        .mount(&server)
        .await;
    let started = Instant::now();
    let report = fetcher(&config(&server), &store)
        .fetch(hf_req("2026-06-12"), t0())
        .await;
    assert!(report.is_ok(), "{report}");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After not honoured"
    );
    assert_eq!(report.sources[0].inserted, 5);
}

#[tokio::test]
async fn a_retry_after_longer_than_the_cap_fails_at_once_without_hammering() {
    let server = MockServer::start().await;
    let (store, _dir) = temp_store().await;
    Mock::given(path("/api/daily_papers"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "3600"))
        .expect(1)
        .mount(&server)
        .await;
    let report = fetcher(&config(&server), &store)
        .fetch(hf_req("2026-06-12"), t0())
        .await;
    assert_eq!(failed_kind(&report.sources[0].outcome), "rate_limited");
}

#[tokio::test]
async fn a_500_then_a_200_succeeds_after_one_retry() {
    let server = MockServer::start().await;
    let (store, _dir) = temp_store().await;
    Mock::given(path("/api/daily_papers"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/api/daily_papers"))
        .respond_with(json(fixture(HF_2026)))
        .expect(1)
        .mount(&server)
        .await;
    let report = fetcher(&config(&server), &store)
        .fetch(hf_req("2026-06-12"), t0())
        .await;
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.sources[0].inserted, 30);
}

#[tokio::test]
async fn persistent_5xx_fails_after_the_configured_retries() {
    let server = MockServer::start().await;
    let (store, _dir) = temp_store().await;
    let cfg = config(&server);
    Mock::given(path("/api/daily_papers"))
        .respond_with(ResponseTemplate::new(503))
        .expect(u64::from(cfg.max_retries) + 1)
        .mount(&server)
        .await;
    let report = fetcher(&cfg, &store)
        .fetch(hf_req("2026-06-12"), t0())
        .await;
    assert_eq!(failed_kind(&report.sources[0].outcome), "http_status");
}

#[tokio::test]
async fn a_timeout_is_retried() {
    let server = MockServer::start().await;
    let (store, _dir) = temp_store().await;
    Mock::given(path("/api/daily_papers"))
        .respond_with(json(hf_slice(0..2)).set_delay(Duration::from_secs(3)))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/api/daily_papers"))
        .respond_with(json(hf_slice(0..2)))
        .expect(1)
        .mount(&server)
        .await;
    let report = fetcher(&config(&server), &store)
        .fetch(hf_req("2026-06-12"), t0())
        .await;
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.sources[0].inserted, 2);
}

/// Serves `bad` as the HF answer and a good arXiv feed, runs every source,
/// and checks that only HF failed, with `kind`, and wrote no papers.
async fn hf_failure_leaves_store_untouched(
    bad: ResponseTemplate,
    max_body: Option<usize>,
    kind: &str,
) {
    let server = MockServer::start().await;
    let (store, _dir) = temp_store().await;
    let mut cfg = config(&server);
    if let Some(m) = max_body {
        cfg.max_body_bytes = m;
    }
    Mock::given(path("/api/daily_papers"))
        .respond_with(bad)
        .mount(&server)
        .await;
    Mock::given(path("/rss/cs.LG+cs.CL"))
        .respond_with(rss(fixture(RSS_EMPTY)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/api/query"))
        .respond_with(atom(fixture(API_NONE_NEW)))
        .mount(&server)
        .await;

    let report = fetcher(&cfg, &store)
        .fetch(FetchRequest::default(), t0())
        .await;

    let names: Vec<SourceName> = report.sources.iter().map(|s| s.source).collect();
    assert_eq!(
        names,
        SourceName::ALL.to_vec(),
        "every source ran: {report}"
    );
    assert_eq!(failed_kind(&report.sources[0].outcome), kind, "{report}");
    match &report.sources[0].outcome {
        Outcome::Failed { message, .. } => {
            assert!(message.starts_with("huggingface: "), "{message}")
        }
        _ => unreachable!(),
    }
    assert!(
        report.sources[1].is_ok() && report.sources[2].is_ok(),
        "{report}"
    );
    assert_eq!(count(&store, "SELECT COUNT(*) FROM papers").await, 0);
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM upvote_observations").await,
        0
    );
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM http_validators WHERE url LIKE '%daily_papers%'"
        )
        .await,
        0
    );
    let log = store.latest_fetches().await.unwrap();
    let hf = log.iter().find(|e| e.source == "huggingface").unwrap();
    assert!(
        !hf.ok && hf.error.as_deref().unwrap().contains("huggingface"),
        "{hf:?}"
    );
}

#[tokio::test]
async fn truncated_json_fails_only_that_source_and_stores_nothing() {
    let full = fixture(HF_2026);
    let truncated = full[..full.len() / 2].to_vec();
    hf_failure_leaves_store_untouched(json(truncated), None, "malformed").await;
}

#[tokio::test]
async fn an_html_error_page_with_status_200_fails_the_fetch() {
    let page = b"<!DOCTYPE html><html><body><h1>We'll be right back</h1></body></html>".to_vec();
    hf_failure_leaves_store_untouched(
        ResponseTemplate::new(200).set_body_raw(page, "text/html; charset=utf-8"),
        None,
        "content_type",
    )
    .await;
}

#[tokio::test]
async fn an_oversized_body_fails_the_fetch() {
    hf_failure_leaves_store_untouched(json(fixture(HF_2026)), Some(4096), "too_large").await;
}

#[tokio::test]
async fn a_404_fails_the_fetch_without_retrying() {
    let server = MockServer::start().await;
    let (store, _dir) = temp_store().await;
    Mock::given(path("/api/daily_papers"))
        .respond_with(ResponseTemplate::new(404))
        .expect(1)
        .mount(&server)
        .await;
    let report = fetcher(&config(&server), &store)
        .fetch(hf_req("2026-06-12"), t0())
        .await;
    assert_eq!(failed_kind(&report.sources[0].outcome), "http_status");
    assert!(report.to_string().contains("HTTP 404"), "{report}");
}

#[tokio::test]
async fn failures_are_counted_by_kind_for_metrics() {
    let server = MockServer::start().await;
    let (store, _dir) = temp_store().await;
    Mock::given(path("/api/daily_papers"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    let f = fetcher(&config(&server), &store);
    f.fetch(hf_req("2026-06-12"), t0()).await;
    f.fetch(hf_req("2026-06-12"), t0()).await;
    let c = &f.counters()[&SourceName::HuggingFace];
    assert_eq!(
        (c.runs_ok, c.runs_failed, c.failures_by_kind["http_status"]),
        (0, 2, 2)
    );
}

#[tokio::test]
async fn an_arxiv_error_feed_fails_the_arxiv_source() {
    let server = MockServer::start().await;
    let (store, _dir) = temp_store().await;
    Mock::given(path("/rss/cs.LG+cs.CL"))
        .respond_with(rss(fixture(RSS_ERROR)))
        .mount(&server)
        .await;
    let report = fetcher(&config(&server), &store)
        .fetch(
            FetchRequest {
                source: Some(SourceName::Arxiv),
                date: None,
            },
            t0(),
        )
        .await;
    assert_eq!(failed_kind(&report.sources[0].outcome), "upstream_error");
    assert!(report.to_string().contains("Bad archive"), "{report}");
}

#[tokio::test]
async fn an_identical_arxiv_feed_body_is_not_processed_twice() {
    let server = MockServer::start().await;
    let (store, _dir) = temp_store().await;
    Mock::given(path("/rss/cs.LG+cs.CL"))
        .respond_with(rss(fixture(RSS_MULTI)))
        .expect(2)
        .mount(&server)
        .await;
    let f = fetcher(&config(&server), &store);
    let req = FetchRequest {
        source: Some(SourceName::Arxiv),
        date: None,
    };
    let first = f.fetch(req, t0()).await;
    assert_eq!(
        (first.sources[0].parsed, first.sources[0].inserted),
        (40, 40)
    );
    let second = f.fetch(req, t0() + TimeDelta::hours(1)).await;
    let r = &second.sources[0];
    assert_eq!(
        (r.not_modified, r.parsed, r.inserted, r.updated),
        (1, 0, 0, 0),
        "{second}"
    );
}

#[tokio::test]
async fn an_arxiv_replacement_updates_the_paper_but_does_not_make_it_new() {
    let server = MockServer::start().await;
    let (store, _dir) = temp_store().await;
    let monday = fixture(RSS_MULTI);
    let next = String::from_utf8(fixture(RSS_MULTI))
        .unwrap()
        .replace(
            "Thu, 28 Nov 2024 00:00:00 -0500",
            "Fri, 29 Nov 2024 00:00:00 -0500",
        )
        .replace(
            "arXiv:2411.17700v1 Announce Type: new",
            "arXiv:2411.17700v2 Announce Type: replace",
        )
        .replace("oai:arXiv.org:2411.17700v1", "oai:arXiv.org:2411.17700v2")
        .replace(
            "<title>Exploring the Impact of Generative AI",
            "<title>Revised: Exploring the Impact of Generative AI",
        );
    let next = next.replacen(
        "<arxiv:announce_type>new</arxiv:announce_type>",
        "<arxiv:announce_type>replace</arxiv:announce_type>",
        1,
    );
    Mock::given(path("/rss/cs.LG+cs.CL"))
        .respond_with(rss(monday))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(path("/rss/cs.LG+cs.CL"))
        .respond_with(rss(next.into_bytes()))
        .mount(&server)
        .await;
    let f = fetcher(&config(&server), &store);
    let req = FetchRequest {
        source: Some(SourceName::Arxiv),
        date: None,
    };
    f.fetch(req, t0()).await;
    let second = f.fetch(req, t0() + TimeDelta::days(1)).await;
    assert!(second.is_ok(), "{second}");

    let p = store.paper(&id("2411.17700")).await.unwrap().unwrap();
    assert_eq!(p.version, Some(2));
    assert!(p.title.starts_with("Revised: "), "{}", p.title);
    assert_eq!(
        p.listed_on,
        Some(day(2024, 11, 28)),
        "a replacement keeps the first listing day"
    );
    // The rest moved to the 29th: still one row per paper.
    assert_eq!(count(&store, "SELECT COUNT(*) FROM papers").await, 40);
    assert_eq!(store.papers_listed_on(day(2024, 11, 29)).await.unwrap(), 28);
}

#[tokio::test]
async fn hf_and_arxiv_records_of_the_same_id_merge_into_one_paper() {
    let server = MockServer::start().await;
    let (store, _dir) = temp_store().await;
    Mock::given(path("/api/daily_papers"))
        .respond_with(json(fixture(HF_2026)))
        .mount(&server)
        .await;
    let api = api_doc(&[
        (
            "2606.00467v2",
            "On the Limits of LLM Adaptability (arXiv)",
            &["cs.CL", "cs.AI"],
        ),
        ("2606.12730v1", "Rethinking psychometrics", &["cs.CL"]),
    ]);
    Mock::given(path("/api/query"))
        .respond_with(atom(api))
        .expect(1)
        .mount(&server)
        .await;
    let f = fetcher(&config(&server), &store);
    assert!(f.fetch(hf_req("2026-06-12"), t0()).await.is_ok());
    let backfill = f
        .fetch(
            FetchRequest {
                source: Some(SourceName::ArxivApi),
                date: Some(day(2026, 6, 12)),
            },
            t0(),
        )
        .await;
    let r = &backfill.sources[0];
    assert!(r.is_ok(), "{backfill}");
    assert_eq!((r.parsed, r.inserted, r.updated), (2, 0, 2));

    // All 30 HF ids were asked for in one request.
    let reqs: Vec<Request> = server.received_requests().await.unwrap();
    let q = reqs.iter().find(|r| r.url.path() == "/api/query").unwrap();
    let ids = q
        .url
        .query_pairs()
        .find(|(k, _)| k == "id_list")
        .unwrap()
        .1
        .split(',')
        .count();
    assert_eq!(ids, 30);

    assert_eq!(count(&store, "SELECT COUNT(*) FROM papers").await, 30);
    let p = store.paper(&id("2606.00467")).await.unwrap().unwrap();
    assert_eq!(
        (p.upvotes, p.comments),
        (Some(0), Some(2)),
        "upvotes from HF"
    );
    assert_eq!(
        p.categories,
        vec!["cs.CL", "cs.AI"],
        "categories from arXiv"
    );
    assert_eq!(
        p.title, "On the Limits of LLM Adaptability (arXiv)",
        "arXiv text wins"
    );
    assert_eq!(p.version, Some(2));
    assert_eq!(p.doi.as_deref(), Some("10.1000/example"));
    assert_eq!(
        p.organization.as_deref(),
        Some("California institute of technology")
    );
    assert_eq!(p.ai_keywords.len(), 14);
    assert_eq!(
        p.listed_on,
        Some(day(2026, 6, 12)),
        "the API does not move the listing day"
    );
    assert_eq!(
        p.sources,
        vec![SourceKind::HuggingFace, SourceKind::ArxivApi]
    );
    assert_eq!(
        p.hf_url().as_deref(),
        Some("https://huggingface.co/papers/2606.00467")
    );
    // HF seen again later: arXiv text stays, upvotes follow HF.
    let later = f
        .fetch(hf_req("2026-06-12"), t0() + TimeDelta::hours(1))
        .await;
    assert!(later.is_ok());
    let again = store.paper(&id("2606.00467")).await.unwrap().unwrap();
    assert_eq!(again, p);
    // The backfill now has nothing left to ask for those two.
    let missing = store
        .papers_missing_arxiv_metadata(day(2026, 6, 12))
        .await
        .unwrap();
    assert_eq!(missing.len(), 28);
}

#[tokio::test]
async fn fetching_twice_changes_nothing_but_the_upvote_observations() {
    let server = MockServer::start().await;
    let (store, _dir) = temp_store().await;
    Mock::given(path("/api/daily_papers"))
        .respond_with(json(fixture(HF_2026)))
        .mount(&server)
        .await;
    Mock::given(path("/rss/cs.LG+cs.CL"))
        .respond_with(rss(fixture(RSS_MULTI)))
        .mount(&server)
        .await;
    Mock::given(path("/api/query"))
        .respond_with(atom(fixture(API_NONE_NEW)))
        .mount(&server)
        .await;
    let f = fetcher(&config(&server), &store);
    let all = FetchRequest::default();
    let first = f.fetch(all, t0()).await;
    assert!(first.is_ok(), "{first}");
    let before = store.candidates(day(2024, 1, 1)).await.unwrap();
    assert_eq!(
        before.len(),
        30 + 29,
        "30 HF papers + 29 new/cross arXiv listings"
    );

    // An hour later: same data, and the heartbeat is not due.
    let soon = f.fetch(all, t0() + TimeDelta::hours(1)).await;
    for s in &soon.sources {
        assert_eq!((s.inserted, s.updated, s.observations), (0, 0, 0), "{soon}");
    }
    // Seven hours later the unchanged counts are re-observed, nothing else.
    let later = f.fetch(all, t0() + TimeDelta::hours(7)).await;
    assert_eq!(later.sources[0].observations, 30, "{later}");
    assert_eq!(
        (later.sources[0].inserted, later.sources[0].updated),
        (0, 0)
    );
    let after = store.candidates(day(2024, 1, 1)).await.unwrap();
    assert_eq!(before.len(), after.len());
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(b.paper, a.paper);
        if b.paper.sources.contains(&SourceKind::HuggingFace) {
            assert_eq!((b.history.len(), a.history.len()), (1, 2), "{}", b.paper.id);
            assert_eq!(a.history[1].upvotes, a.history[0].upvotes);
        }
    }
}

#[tokio::test]
async fn without_a_date_hf_fetches_today_and_the_refresh_days() {
    let server = MockServer::start().await;
    let (store, _dir) = temp_store().await;
    let mut cfg = config(&server);
    cfg.huggingface.refresh_days = 2;
    for d in ["2026-06-12", "2026-06-11", "2026-06-10"] {
        Mock::given(query_param("date", d))
            .respond_with(json(b"[]".to_vec()))
            .expect(1)
            .mount(&server)
            .await;
    }
    let report = fetcher(&cfg, &store)
        .fetch(
            FetchRequest {
                source: Some(SourceName::HuggingFace),
                date: None,
            },
            t0(),
        )
        .await;
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.sources[0].requests, 3);
}

#[tokio::test]
async fn with_a_date_the_arxiv_feed_is_skipped_not_failed() {
    let server = MockServer::start().await;
    let (store, _dir) = temp_store().await;
    Mock::given(path("/rss/cs.LG+cs.CL"))
        .respond_with(rss(fixture(RSS_MULTI)))
        .expect(0)
        .mount(&server)
        .await;
    let report = fetcher(&config(&server), &store)
        .fetch(
            FetchRequest {
                source: Some(SourceName::Arxiv),
                date: Some(day(2026, 6, 12)),
            },
            t0(),
        )
        .await;
    assert!(report.is_ok());
    assert!(matches!(report.sources[0].outcome, Outcome::Skipped(_)));
}

#[tokio::test]
async fn arxiv_requests_are_spaced_by_the_minimum_interval() {
    let server = MockServer::start().await;
    let (store, _dir) = temp_store().await;
    Mock::given(path("/api/query"))
        .respond_with(atom(fixture(API_NONE_NEW)))
        .expect(3)
        .mount(&server)
        .await;
    let tuning = ClientTuning {
        arxiv_min_interval: Some(Duration::from_millis(300)),
        ..fast()
    };
    let f = Fetcher::with_tuning(&config(&server), store.clone(), tuning).unwrap();
    let ids: Vec<PaperId> = (0..120)
        .map(|i| id(&format!("2606.{:05}", i + 1)))
        .collect();
    let started = Instant::now();
    let r = f.backfill_ids(&ids, t0()).await;
    assert!(r.is_ok(), "{r}");
    assert_eq!(r.requests, 3, "120 ids in batches of 50");
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_arxiv_403_blocks_every_later_arxiv_request() {
    let server = MockServer::start().await;
    let (store, _dir) = temp_store().await;
    Mock::given(path("/rss/cs.LG+cs.CL"))
        .respond_with(ResponseTemplate::new(403))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/api/query"))
        .respond_with(atom(fixture(API_MISSING_NEW)))
        .expect(0)
        .mount(&server)
        .await;
    let f = fetcher(&config(&server), &store);
    let feed = f
        .fetch(
            FetchRequest {
                source: Some(SourceName::Arxiv),
                date: None,
            },
            t0(),
        )
        .await;
    assert_eq!(failed_kind(&feed.sources[0].outcome), "blocked");
    let api = f.backfill_ids(&[id("2201.13452")], t0()).await;
    assert_eq!(failed_kind(&api.outcome), "blocked");
}

#[tokio::test]
async fn a_category_query_backfills_metadata_without_creating_candidates() {
    let server = MockServer::start().await;
    let (store, _dir) = temp_store().await;
    Mock::given(path("/api/query"))
        .and(query_param("search_query", "cat:cs.LG"))
        .and(query_param("sortBy", "submittedDate"))
        .respond_with(atom(fixture(API_2026)))
        .expect(1)
        .mount(&server)
        .await;
    let r = fetcher(&config(&server), &store)
        .backfill_query("cat:cs.LG", 5, t0())
        .await;
    assert!(r.is_ok(), "{r}");
    assert_eq!((r.parsed, r.inserted), (5, 5));
    assert!(store.candidates(day(2000, 1, 1)).await.unwrap().is_empty());
    let p = store.paper(&id("2606.13568")).await.unwrap().unwrap();
    assert_eq!(p.categories, vec!["cs.LG", "math-ph"]);
    assert_eq!(
        store.last_fetch().await.unwrap().map(|t| t >= t0()),
        Some(true)
    );
}
