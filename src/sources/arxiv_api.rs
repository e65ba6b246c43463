//! arXiv export API (`/api/query`, Atom): parsing.
//!
//! Handles both backend generations (before and after November 2025):
//! elements are found by namespace and local name, never by position, and
//! links are recognised by the path of `href`, not by `rel`/`type`.

use super::xml::{self, ARXIV, ATOM, OPENSEARCH};
use super::{is_arxiv_category, SourceError};
use crate::domain::{normalize_whitespace, Paper, PaperId, SourceKind};
use chrono::{DateTime, Utc};

const FORMAT: &str = "arXiv API Atom";

/// One page of export-API results.
#[derive(Debug, Clone)]
pub struct ApiPage {
    /// `opensearch:totalResults`; the legacy backend counted ghost entries
    /// (and sometimes reported 1 for no results), so do not page on it
    /// alone.
    pub total_results: Option<u64>,
    pub start_index: Option<u64>,
    pub items_per_page: Option<u64>,
    /// Real entries only. Papers carry no `listed_on`: the API is metadata,
    /// not an announcement.
    pub papers: Vec<Paper>,
    /// Entries skipped because they had no id (legacy "ghost" entries for
    /// missing ids).
    pub ghosts: usize,
}

/// Parses one export-API response.
///
/// Errors: malformed/truncated XML or a root that is not an Atom `<feed>`
/// → [`SourceError::Malformed`]; an error entry (`<id>` containing
/// `/api/errors`) → [`SourceError::Upstream`] with arXiv's message. Pure.
pub fn parse_arxiv_api(bytes: &[u8]) -> Result<ApiPage, SourceError> {
    let root = xml::parse(bytes, FORMAT)?;
    if !root.is(ATOM, "feed") {
        return Err(SourceError::malformed(
            FORMAT,
            format!("root element is <{}>, not an Atom <feed>", root.name),
        ));
    }
    let num = |name: &str| {
        root.child_text(OPENSEARCH, name)
            .and_then(|t| t.trim().parse::<u64>().ok())
    };
    let mut page = ApiPage {
        total_results: num("totalResults"),
        start_index: num("startIndex"),
        items_per_page: num("itemsPerPage"),
        papers: Vec::new(),
        ghosts: 0,
    };
    for entry in root.children_named(ATOM, "entry") {
        let raw_id = entry.child_text(ATOM, "id").map(str::trim).unwrap_or("");
        if raw_id.contains("/api/errors") {
            let msg = entry
                .child_text(ATOM, "summary")
                .map(normalize_whitespace)
                .unwrap_or_default();
            return Err(SourceError::Upstream(format!(
                "arXiv API error: {}",
                msg.chars().take(300).collect::<String>()
            )));
        }
        if raw_id.is_empty() {
            page.ghosts += 1;
            continue;
        }
        let Ok((id, version)) = PaperId::parse_arxiv(raw_id) else {
            tracing::warn!(id = %raw_id.escape_debug(), "skipping arXiv API entry with an unparseable id");
            page.ghosts += 1;
            continue;
        };
        page.papers.push(entry_paper(entry, id, version));
    }
    Ok(page)
}

/// The paper an entry describes: text, authors, categories (primary
/// first), publication time, DOI and journal reference.
fn entry_paper(entry: &xml::Element, id: PaperId, version: Option<u32>) -> Paper {
    let mut paper = Paper::new(
        id,
        entry.child_text(ATOM, "title").unwrap_or(""),
        entry.child_text(ATOM, "summary").unwrap_or(""),
    );
    paper.version = version;
    paper.authors = entry
        .children_named(ATOM, "author")
        .filter_map(|a| a.child_text(ATOM, "name"))
        .map(normalize_whitespace)
        .filter(|n| !n.is_empty())
        .collect();
    paper.categories = categories(entry);
    paper.published = entry
        .child_text(ATOM, "published")
        .and_then(|t| DateTime::parse_from_rfc3339(t.trim()).ok())
        .map(|t| t.with_timezone(&Utc));
    let text = |name: &str| {
        entry
            .child_text(ARXIV, name)
            .map(normalize_whitespace)
            .filter(|s| !s.is_empty())
    };
    paper.doi = text("doi");
    paper.journal_ref = text("journal_ref");
    paper.sources = vec![SourceKind::ArxivApi];
    paper
}

/// Primary first, then the rest in document order; empty (ghost) and
/// non-arXiv terms (MSC "35", ACM "I.2.7") dropped.
fn categories(entry: &xml::Element) -> Vec<String> {
    let primary = entry
        .child(ARXIV, "primary_category")
        .and_then(|p| p.attr("term"))
        .map(str::trim)
        .filter(|t| is_arxiv_category(t));
    let mut cats: Vec<String> = primary.into_iter().map(str::to_string).collect();
    for term in entry
        .children_named(ATOM, "category")
        .filter_map(|c| c.attr("term"))
        .map(str::trim)
        .filter(|t| is_arxiv_category(t))
    {
        if !cats.iter().any(|c| c == term) {
            cats.push(term.to_string());
        }
    }
    cats
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_entry_is_an_upstream_error() {
        let doc = br#"<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>http://arxiv.org/api/errors#incorrect_id_format_for_1234.12345</id><title>Error</title><summary>incorrect id format for 1234.12345</summary></entry></feed>"#;
        let err = parse_arxiv_api(doc).unwrap_err();
        assert!(err.to_string().contains("incorrect id format"), "{err}");
    }

    #[test]
    fn a_feed_in_the_wrong_namespace_is_rejected() {
        assert!(parse_arxiv_api(b"<feed><entry/></feed>").is_err());
    }
}
