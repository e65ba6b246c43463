//! The digest email's view model: what the templates in
//! `templates/email/digest.*` receive. Every link is built and checked
//! here (R40); every string is plain text that the HTML registry escapes.

use crate::domain::Paper;
use crate::render::safe_link;
use serde::Serialize;

/// One paper as shown in a digest.
#[derive(Debug, Clone, Serialize)]
pub struct PaperView {
    /// 1-based position in the digest.
    pub number: usize,
    pub title: String,
    /// Where the title links: the paper's page (arXiv abstract, else its
    /// project page); absent when no safe link is known.
    pub url: Option<String>,
    pub authors: String,
    pub excerpt: String,
    pub reason: String,
    pub upvotes: Option<i64>,
    pub code_url: Option<String>,
    pub hf_url: Option<String>,
    /// The reader's feedback links for this paper (signed, per reader).
    pub feedback: Option<FeedbackUrls>,
}

/// *More like this*, *Not for me* and *Save* under a paper: links to
/// paperboy's own one-button pages (the paper's own links are never
/// rewritten).
#[derive(Debug, Clone, Serialize)]
pub struct FeedbackUrls {
    pub more: String,
    pub not_for_me: String,
    pub save: String,
}

/// Everything the digest templates use.
#[derive(Debug, Clone, Serialize)]
pub struct DigestView {
    pub subject: String,
    pub preheader: String,
    pub date: String,
    pub heading: String,
    pub papers: Vec<PaperView>,
    pub topics: Vec<String>,
    pub fallback: bool,
    pub manage_url: String,
    pub unsubscribe_url: String,
    pub home_url: String,
    pub why: String,
}

/// Longest excerpt, in characters: two to three lines in a mail client.
pub const EXCERPT_CHARS: usize = 280;
/// Longest preheader (R10).
pub const PREHEADER_CHARS: usize = 90;

/// "A. Author, B. Author, C. Author et al." for more than three authors.
pub fn short_authors(authors: &[String]) -> String {
    match authors.len() {
        0 => String::new(),
        1..=3 => authors.join(", "),
        _ => format!("{} et al.", authors[..3].join(", ")),
    }
}

/// Cuts `s` at a word boundary before `max` characters, adding "…".
pub fn excerpt(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let cut: String = s.chars().take(max).collect();
    let trimmed = match cut.rfind(' ') {
        Some(i) if i > max / 2 => &cut[..i],
        _ => cut.as_str(),
    };
    format!("{}…", trimmed.trim_end_matches([',', ';', ':', '.', ' ']))
}

/// A GitHub repository link, accepted only as https on github.com.
fn code_link(repo: &str) -> Option<String> {
    let url = safe_link(repo, false)?;
    let host = url::Url::parse(&url).ok()?.host_str()?.to_string();
    (host == "github.com" || host == "www.github.com").then_some(url)
}

impl PaperView {
    pub fn new(number: usize, paper: &Paper, reason: String) -> PaperView {
        let url = paper.abs_url().or_else(|| {
            paper
                .project_page
                .as_deref()
                .and_then(|p| safe_link(p, false))
        });
        let text = paper
            .ai_summary
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .unwrap_or(&paper.abstract_text);
        PaperView {
            number,
            title: paper.title.clone(),
            url,
            authors: short_authors(&paper.authors),
            excerpt: excerpt(text, EXCERPT_CHARS),
            reason,
            upvotes: paper.upvotes.filter(|u| *u > 0),
            code_url: paper.github_repo.as_deref().and_then(code_link),
            hf_url: paper.hf_url(),
            feedback: None,
        }
    }

    pub fn with_feedback(mut self, urls: FeedbackUrls) -> PaperView {
        self.feedback = Some(urls);
        self
    }
}

/// Subject and preheader from the picks (R10, R11): the count and the top
/// topic, then the top title.
pub fn subject_and_preheader(papers: &[PaperView], top_topic: Option<&str>) -> (String, String) {
    let n = papers.len();
    let noun = if n == 1 { "paper" } else { "papers" };
    let subject = match top_topic {
        Some(t) => format!("{n} new {noun} on {t}"),
        None => format!("{n} trending {noun} today"),
    };
    let first = papers.first().map(|p| p.title.as_str()).unwrap_or("");
    let pre = format!("{subject} — top: {first}");
    (subject, excerpt(&pre, PREHEADER_CHARS))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::PaperId;

    #[test]
    fn long_author_lists_are_shortened() {
        let a: Vec<String> = ["A", "B", "C", "D"].iter().map(|s| s.to_string()).collect();
        assert_eq!(short_authors(&a[..2]), "A, B");
        assert_eq!(short_authors(&a), "A, B, C et al.");
    }

    #[test]
    fn excerpts_cut_at_a_word_boundary() {
        let e = excerpt(&"word ".repeat(100), 30);
        assert!(e.ends_with('…') && e.chars().count() <= 31, "{e}");
        assert!(!e.contains("wor…"));
    }

    #[test]
    fn unsafe_links_never_reach_the_view() {
        let (id, _) = PaperId::parse_arxiv("2606.00001").unwrap();
        let mut p = Paper::new(PaperId::external("s2", "x"), "T", "A");
        p.project_page = Some("javascript:alert(1)".into());
        p.github_repo = Some("https://evil.example/repo".into());
        let v = PaperView::new(1, &p, String::new());
        assert_eq!(v.url, None);
        assert_eq!(v.code_url, None);
        let mut q = Paper::new(id, "T", "A");
        q.github_repo = Some("https://github.com/org/repo".into());
        let v = PaperView::new(1, &q, String::new());
        assert_eq!(v.url.as_deref(), Some("https://arxiv.org/abs/2606.00001"));
        assert_eq!(v.code_url.as_deref(), Some("https://github.com/org/repo"));
    }

    #[test]
    fn the_subject_names_the_count_and_top_topic() {
        let p = PaperView {
            number: 1,
            title: "Fast decoding".into(),
            url: None,
            authors: String::new(),
            excerpt: String::new(),
            reason: String::new(),
            upvotes: None,
            code_url: None,
            hf_url: None,
            feedback: None,
        };
        let (s, pre) = subject_and_preheader(&[p.clone(), p], Some("speculative decoding"));
        assert_eq!(s, "2 new papers on speculative decoding");
        assert!(pre.starts_with(&s) && pre.chars().count() <= PREHEADER_CHARS + 1);
    }
}
