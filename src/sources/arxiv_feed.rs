//! arXiv listing feeds (`rss.arxiv.org/rss/{cats}` and `/atom/{cats}`):
//! parsing.
//!
//! A feed holds one announcement day. Items are `new`, `cross`, `replace`
//! or `replace-cross`; only the first two are *listings*: a replacement
//! updates metadata of a paper but must not make it new again, so its
//! [`Paper::listed_on`] is left `None` (the store never moves a listing
//! day backwards or clears it).

use super::xml::{self, Element, ARXIV, ATOM, DC};
use super::{is_arxiv_category, SourceError};
use crate::domain::{normalize_whitespace, Paper, PaperId, SourceKind};
use chrono::{DateTime, FixedOffset, NaiveDate};

/// `arxiv:announce_type` of a feed item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnnounceType {
    New,
    Cross,
    Replace,
    ReplaceCross,
    /// Anything else the server may send (`absonly`, future values).
    Other,
}

impl AnnounceType {
    fn parse(s: &str) -> AnnounceType {
        match s.trim() {
            "new" => AnnounceType::New,
            "cross" => AnnounceType::Cross,
            "replace" => AnnounceType::Replace,
            "replace-cross" => AnnounceType::ReplaceCross,
            _ => AnnounceType::Other,
        }
    }

    /// True for announcements that put a paper in front of readers for the
    /// first time in the requested categories.
    pub fn is_listing(self) -> bool {
        matches!(self, AnnounceType::New | AnnounceType::Cross)
    }
}

#[derive(Debug, Clone)]
pub struct FeedItem {
    pub paper: Paper,
    pub announce: AnnounceType,
}

/// A parsed listing feed. An empty `items` is normal (weekends, holidays).
#[derive(Debug, Clone)]
pub struct FeedListing {
    /// The announcement day (channel `pubDate`, US Eastern), when present.
    pub announced_on: Option<NaiveDate>,
    pub items: Vec<FeedItem>,
}

const RSS: &str = "arXiv RSS feed";
const ATOM_FEED: &str = "arXiv Atom feed";

/// Parses an `rss.arxiv.org/rss/…` document (RSS 2.0).
///
/// Errors: not XML / truncated / not `<rss><channel>` →
/// [`SourceError::Malformed`]; arXiv's error feed (`Feed error for query`)
/// → [`SourceError::Upstream`] with arXiv's message. Items without a
/// usable arXiv id are skipped. Pure.
pub fn parse_arxiv_rss(bytes: &[u8]) -> Result<FeedListing, SourceError> {
    let root = xml::parse(bytes, RSS)?;
    if !root.is("", "rss") {
        return Err(SourceError::malformed(
            RSS,
            format!("root element is <{}>, not <rss>", root.name),
        ));
    }
    let channel = root
        .child("", "channel")
        .ok_or_else(|| SourceError::malformed(RSS, "no <channel>"))?;
    check_error_feed(
        channel.child_text("", "title"),
        channel.child_text("", "description"),
    )?;
    let channel_day = channel.child_text("", "pubDate").and_then(rfc2822_day);
    let mut items = Vec::new();
    for item in channel.children_named("", "item") {
        let raw_id = item
            .child_text("", "guid")
            .filter(|g| PaperId::parse_arxiv(g).is_ok())
            .or_else(|| item.child_text("", "link"));
        let day = item
            .child_text("", "pubDate")
            .and_then(rfc2822_day)
            .or(channel_day);
        let categories = item
            .children_named("", "category")
            .map(|c| c.text.clone())
            .collect();
        if let Some(it) = build_item(
            raw_id,
            item.child_text("", "title"),
            item.child_text("", "description"),
            categories,
            day,
            item,
        ) {
            items.push(it);
        }
    }
    Ok(FeedListing {
        announced_on: channel_day,
        items,
    })
}

/// Parses an `rss.arxiv.org/atom/…` document (Atom 1.0).
///
/// No real capture of this variant exists; it follows arXiv's published
/// specification (<https://info.arxiv.org/help/rss_specifications.html>).
/// Same error contract as
/// [`parse_arxiv_rss`].
pub fn parse_arxiv_atom_feed(bytes: &[u8]) -> Result<FeedListing, SourceError> {
    let root = xml::parse(bytes, ATOM_FEED)?;
    if !root.is(ATOM, "feed") {
        return Err(SourceError::malformed(
            ATOM_FEED,
            format!("root element is <{}>, not an Atom <feed>", root.name),
        ));
    }
    check_error_feed(
        root.child_text(ATOM, "title"),
        root.child_text(ATOM, "subtitle"),
    )?;
    let mut feed_day = None;
    let mut items = Vec::new();
    for entry in root.children_named(ATOM, "entry") {
        let day = entry.child_text(ATOM, "published").and_then(rfc3339_day);
        feed_day = feed_day.or(day);
        let link = entry
            .children_named(ATOM, "link")
            .filter_map(|l| l.attr("href"))
            .find(|h| h.contains("/abs/"));
        let raw_id = entry
            .child_text(ATOM, "id")
            .filter(|g| PaperId::parse_arxiv(g).is_ok())
            .or(link);
        let categories = entry
            .children_named(ATOM, "category")
            .filter_map(|c| c.attr("term").map(str::to_string))
            .collect();
        if let Some(it) = build_item(
            raw_id,
            entry.child_text(ATOM, "title"),
            entry.child_text(ATOM, "summary"),
            categories,
            day,
            entry,
        ) {
            items.push(it);
        }
    }
    Ok(FeedListing {
        announced_on: feed_day,
        items,
    })
}

fn check_error_feed(title: Option<&str>, description: Option<&str>) -> Result<(), SourceError> {
    match title {
        Some(t) if t.trim_start().starts_with("Feed error for query") => {
            let msg = description
                .map(normalize_whitespace)
                .filter(|d| !d.is_empty())
                .unwrap_or_else(|| normalize_whitespace(t));
            Err(SourceError::Upstream(format!(
                "arXiv feed error: {}",
                msg.chars().take(300).collect::<String>()
            )))
        }
        _ => Ok(()),
    }
}

/// Shared by both feed variants: `el` is the `<item>`/`<entry>` element,
/// read for the namespaced arXiv and Dublin Core extensions.
fn build_item(
    raw_id: Option<&str>,
    title: Option<&str>,
    description: Option<&str>,
    categories: Vec<String>,
    day: Option<NaiveDate>,
    el: &Element,
) -> Option<FeedItem> {
    let raw_id = raw_id?;
    let Ok((id, version)) = PaperId::parse_arxiv(raw_id) else {
        tracing::warn!(id = %raw_id.escape_debug(), "skipping arXiv feed item without a valid id");
        return None;
    };
    let description = description.unwrap_or("");
    let (desc_type, abstract_text) = split_description(description);
    let announce = el
        .child_text(ARXIV, "announce_type")
        .map(AnnounceType::parse)
        .or(desc_type)
        .unwrap_or(AnnounceType::Other);
    let mut paper = Paper::new(id, title.unwrap_or(""), abstract_text);
    // The guid carries the version; the description repeats it.
    paper.version = version.or_else(|| {
        description
            .strip_prefix("arXiv:")
            .and_then(|r| r.split_whitespace().next())
            .and_then(|v| PaperId::parse_arxiv(v).ok())
            .and_then(|(_, v)| v)
    });
    paper.authors = el
        .child_text(DC, "creator")
        .map(split_creators)
        .unwrap_or_default();
    paper.categories = dedup(
        categories
            .into_iter()
            .map(|c| c.trim().to_string())
            .filter(|c| is_arxiv_category(c)),
    );
    paper.doi = el
        .child_text(ARXIV, "DOI")
        .or_else(|| el.child_text(ARXIV, "doi"))
        .map(normalize_whitespace)
        .filter(|s| !s.is_empty());
    paper.journal_ref = el
        .child_text(ARXIV, "journal_reference")
        .or_else(|| el.child_text(ARXIV, "journal_ref"))
        .map(normalize_whitespace)
        .filter(|s| !s.is_empty());
    paper.listed_on = if announce.is_listing() { day } else { None };
    paper.sources = vec![SourceKind::ArxivFeed];
    Some(FeedItem { paper, announce })
}

/// Splits `arXiv:{id}v{n} Announce Type: {type} \nAbstract: {abstract}`.
/// A description that does not follow the pattern is taken as the abstract.
fn split_description(d: &str) -> (Option<AnnounceType>, &str) {
    let t = d.trim_start();
    if !t.starts_with("arXiv:") {
        return (None, d);
    }
    let Some(pos) = t.find("Abstract:") else {
        return (None, d);
    };
    let head = &t[..pos];
    let announce = head
        .split_once("Announce Type:")
        .and_then(|(_, r)| r.split_whitespace().next())
        .map(AnnounceType::parse);
    (announce, &t[pos + "Abstract:".len()..])
}

/// Splits a `dc:creator` string into author names on commas that are not
/// inside parentheses (affiliations may contain commas:
/// `A (Univ. X, Dept. Y), B` → `["A", "B"]`). Parenthesised affiliations
/// are dropped so names match the export API's `author/name` and followed
/// authors; a leading `and` (`A, B, and C`) is dropped. A part that is
/// *only* a parenthesis (unbalanced input) is kept verbatim rather than lost.
pub fn split_creators(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    let push = |out: &mut Vec<String>, part: &str| {
        let stripped = strip_parenthesised(part);
        let name = normalize_whitespace(if stripped.trim().is_empty() {
            part
        } else {
            &stripped
        });
        let name = name.strip_prefix("and ").unwrap_or(&name).to_string();
        if !name.is_empty() && name != "and" {
            out.push(name);
        }
    };
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                push(&mut out, &s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    push(&mut out, &s[start..]);
    out
}

/// `part` without any `(…)` groups (nesting-aware; an unclosed group runs
/// to the end).
fn strip_parenthesised(part: &str) -> String {
    let mut depth = 0usize;
    let mut out = String::with_capacity(part.len());
    for c in part.chars() {
        match c {
            '(' => depth += 1,
            ')' if depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

fn dedup(it: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in it {
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

/// The calendar day of an RFC 2822 time in its own offset (arXiv writes US
/// Eastern midnight, so the local day is the announcement day).
fn rfc2822_day(s: &str) -> Option<NaiveDate> {
    DateTime::<FixedOffset>::parse_from_rfc2822(s.trim())
        .ok()
        .map(|t| t.date_naive())
}

fn rfc3339_day(s: &str) -> Option<NaiveDate> {
    DateTime::<FixedOffset>::parse_from_rfc3339(s.trim())
        .ok()
        .map(|t| t.date_naive())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creators_split_only_on_commas_outside_parentheses() {
        assert_eq!(
            split_creators(
                "Aleteia Araujo (University of Brasilia Brazil, The University of Melbourne Australia), Breno Costa (UnB), Benjamin R\\'emy"
            ),
            vec!["Aleteia Araujo", "Breno Costa", "Benjamin R\\'emy"]
        );
    }

    #[test]
    fn creators_tolerate_unbalanced_parentheses_and_a_final_and() {
        assert_eq!(split_creators("A (x, y, B, and C"), vec!["A"]);
        assert_eq!(split_creators("(Consortium), B"), vec!["(Consortium)", "B"]);
        assert_eq!(split_creators("A, B, and C"), vec!["A", "B", "C"]);
        assert_eq!(split_creators(""), Vec::<String>::new());
    }

    #[test]
    fn description_splits_into_announce_type_and_abstract() {
        let (t, a) = split_description(
            "arXiv:2411.17700v1 Announce Type: replace-cross \nAbstract: We $x<y$.",
        );
        assert_eq!(t, Some(AnnounceType::ReplaceCross));
        assert_eq!(a.trim(), "We $x<y$.");
        let (t, a) = split_description("Just text");
        assert_eq!((t, a), (None, "Just text"));
    }
}
