//! Hugging Face Daily Papers (`GET /api/daily_papers`): parsing.
//!
//! Accepts the current format (2025+: `submittedOnDailyAt`, `ai_*`) and the
//! legacy one (2024: no `submittedOnDailyAt`, item `publishedAt` = the time
//! the paper was put on Daily Papers). Every field except `paper.id` is
//! optional, and a missing key and `null` are treated alike.

use super::{safe_http_url, SourceError};
use crate::domain::{normalize_whitespace, Paper, PaperId, SourceKind};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;

const FORMAT: &str = "Hugging Face daily_papers JSON";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Item {
    paper: Option<HfPaper>,
    published_at: Option<String>,
    title: Option<String>,
    summary: Option<String>,
    num_comments: Option<i64>,
    organization: Option<Org>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HfPaper {
    id: Option<String>,
    title: Option<String>,
    summary: Option<String>,
    authors: Option<Vec<Author>>,
    published_at: Option<String>,
    submitted_on_daily_at: Option<String>,
    upvotes: Option<i64>,
    #[serde(rename = "ai_summary")]
    ai_summary: Option<String>,
    #[serde(rename = "ai_keywords")]
    ai_keywords: Option<Vec<Option<String>>>,
    github_repo: Option<String>,
    project_page: Option<String>,
    organization: Option<Org>,
}

#[derive(Deserialize)]
struct Author {
    name: Option<String>,
    hidden: Option<bool>,
}

#[derive(Deserialize)]
struct Org {
    name: Option<String>,
    fullname: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Body {
    List(Vec<serde_json::Value>),
    Object(serde_json::Map<String, serde_json::Value>),
}

/// Parses one `/api/daily_papers` response body.
///
/// `requested_day` is the `date` the page was asked for, if any; legacy
/// items without `submittedOnDailyAt` take it as their listing day
/// (falling back to the item's `publishedAt`, which then meant "submitted
/// to Daily Papers"). Items whose `paper.id` is not an arXiv id are
/// skipped; anything that is not a JSON array of objects is an error (a
/// JSON object with an `error` key becomes [`SourceError::Upstream`]).
///
/// Pure: no clock, no I/O. Returns papers in response order with
/// `sources = [HuggingFace]`.
pub fn parse_hf(bytes: &[u8], requested_day: Option<NaiveDate>) -> Result<Vec<Paper>, SourceError> {
    let body: Body =
        serde_json::from_slice(bytes).map_err(|e| SourceError::malformed(FORMAT, e.to_string()))?;
    let items = match body {
        Body::List(items) => items,
        Body::Object(obj) => {
            return Err(match obj.get("error").and_then(|e| e.as_str()) {
                Some(msg) => SourceError::Upstream(msg.chars().take(500).collect()),
                None => SourceError::malformed(FORMAT, "expected a JSON array, got an object"),
            })
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, value) in items.into_iter().enumerate() {
        let mut item: Item = serde_path_to_error::deserialize(value)
            .map_err(|e| SourceError::malformed(FORMAT, format!("item {i}: {e}")))?;
        let Some(p) = item.paper.take() else {
            return Err(SourceError::malformed(
                FORMAT,
                format!("item {i} has no `paper`"),
            ));
        };
        let raw_id = p.id.clone().unwrap_or_default();
        let Ok((id, version)) = PaperId::parse_arxiv(&raw_id) else {
            tracing::warn!(item = i, id = %raw_id.escape_debug(), "skipping Hugging Face item without an arXiv id");
            continue;
        };
        out.push(to_paper(id, version, p, item, requested_day));
    }
    Ok(out)
}

fn to_paper(
    id: PaperId,
    version: Option<u32>,
    p: HfPaper,
    item: Item,
    requested_day: Option<NaiveDate>,
) -> Paper {
    let title = p.title.or(item.title).unwrap_or_default();
    let summary = p.summary.or(item.summary).unwrap_or_default();
    let mut paper = Paper::new(id, &title, &summary);
    paper.version = version;
    paper.authors = p
        .authors
        .unwrap_or_default()
        .into_iter()
        .filter(|a| a.hidden != Some(true))
        .filter_map(|a| a.name.map(|n| normalize_whitespace(&n)))
        .filter(|n| !n.is_empty())
        .collect();
    paper.published = p.published_at.as_deref().and_then(parse_time);
    paper.listed_on = p
        .submitted_on_daily_at
        .as_deref()
        .and_then(parse_time)
        .map(|t| t.date_naive())
        .or(requested_day)
        .or_else(|| {
            item.published_at
                .as_deref()
                .and_then(parse_time)
                .map(|t| t.date_naive())
        })
        .or_else(|| paper.published.map(|t| t.date_naive()));
    // Counts are never negative; a negative number is upstream garbage.
    paper.upvotes = Some(p.upvotes.unwrap_or(0).max(0));
    paper.comments = item.num_comments.map(|c| c.max(0));
    paper.ai_summary = non_empty(p.ai_summary.as_deref());
    paper.ai_keywords = p
        .ai_keywords
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .map(|k| normalize_whitespace(&k))
        .filter(|k| !k.is_empty())
        .collect();
    paper.github_repo = p.github_repo.as_deref().and_then(safe_http_url);
    paper.project_page = p.project_page.as_deref().and_then(safe_http_url);
    paper.organization = p
        .organization
        .or(item.organization)
        .and_then(|o| non_empty(o.fullname.as_deref()).or_else(|| non_empty(o.name.as_deref())));
    paper.sources = vec![SourceKind::HuggingFace];
    paper
}

fn non_empty(s: Option<&str>) -> Option<String> {
    s.map(normalize_whitespace).filter(|s| !s.is_empty())
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_and_missing_optional_fields_are_accepted() {
        let papers = parse_hf(
            br#"[{"paper":{"id":"2606.00467","title":null,"upvotes":null,"authors":[{"name":"A","hidden":true},{"name":" B\n C "}]}}]"#,
            None,
        )
        .unwrap();
        assert_eq!(papers.len(), 1);
        assert_eq!(papers[0].authors, vec!["B C"]);
        assert_eq!(papers[0].upvotes, Some(0));
        assert_eq!(papers[0].listed_on, None);
    }

    #[test]
    fn an_error_object_is_an_upstream_error() {
        let err = parse_hf(br#"{"error":"Invalid date"}"#, None).unwrap_err();
        assert!(
            matches!(err, SourceError::Upstream(ref m) if m == "Invalid date"),
            "{err}"
        );
    }

    #[test]
    fn items_without_an_arxiv_id_are_skipped() {
        let papers = parse_hf(
            br#"[{"paper":{"id":"nope"}},{"paper":{"id":"2606.00467"}}]"#,
            None,
        )
        .unwrap();
        assert_eq!(papers.len(), 1);
    }

    #[test]
    fn javascript_links_are_dropped() {
        let papers = parse_hf(
            br#"[{"paper":{"id":"2606.00467","githubRepo":"javascript:alert(1)","projectPage":"https://x.org/p"}}]"#,
            None,
        )
        .unwrap();
        assert_eq!(papers[0].github_repo, None);
        assert_eq!(papers[0].project_page.as_deref(), Some("https://x.org/p"));
    }
}
