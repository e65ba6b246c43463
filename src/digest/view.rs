//! The digest email's view model: what the templates in
//! `templates/email/digest.*` receive. Every link is built and checked
//! here; every string is plain text that the HTML registry escapes.

use crate::domain::{Paper, Span};
use crate::rank::name_list;
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
    /// The PDF, where the source gives one (arXiv does for every paper).
    pub pdf_url: Option<String>,
    /// The paper's discussion page (Hugging Face), when listed there.
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
/// Longest preheader.
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
            pdf_url: paper.pdf_url(),
            hf_url: paper.hf_url(),
            feedback: None,
        }
    }

    pub fn with_feedback(mut self, urls: FeedbackUrls) -> PaperView {
        self.feedback = Some(urls);
        self
    }
}

/// Subject and preheader from the picks. The subject names
/// the topics the papers are on, most papers first ("10 papers on
/// diffusion models, LLM safety and 1 more"); `topics` holds each pick's
/// best topic, `None` for one picked for another reason. A weekly digest
/// says "this week". The preheader is [`preheader`].
pub fn subject_and_preheader(
    papers: &[PaperView],
    topics: &[Option<&str>],
    span: Span,
) -> (String, String) {
    let n = papers.len();
    let noun = if n == 1 { "paper" } else { "papers" };
    let covered = topics_by_count(topics);
    let subject = match (covered.is_empty(), span) {
        (true, _) => format!("{n} trending {noun} {}", span.phrase()),
        (false, Span::Day) => format!("{n} {noun} on {}", name_list(&covered, SUBJECT_TOPICS, "")),
        (false, Span::Week) => format!(
            "{n} {noun} on {} this week",
            name_list(&covered, SUBJECT_TOPICS, "")
        ),
    };
    (subject, preheader(papers, &covered))
}

/// Topics the subject names before "and N more".
const SUBJECT_TOPICS: usize = 2;

/// The one-line summary that opens both parts and follows the subject in
/// inbox lists: facts the subject does not give — the topics it
/// left out, how many papers have code, the most upvotes — as whole
/// clauses that fit [`PREHEADER_CHARS`], never a paper title (the titles
/// follow right below it, and a cut title reads as a defect).
pub fn preheader(papers: &[PaperView], covered: &[&str]) -> String {
    let mut clauses = Vec::new();
    if covered.len() > SUBJECT_TOPICS {
        clauses.push(format!(
            "also on {}",
            name_list(&covered[SUBJECT_TOPICS..], 2, "")
        ));
    }
    let with_code = papers.iter().filter(|p| p.code_url.is_some()).count();
    if with_code > 0 {
        clauses.push(format!("{with_code} with code"));
    }
    if let Some(most) = papers.iter().filter_map(|p| p.upvotes).max() {
        let noun = if most == 1 { "upvote" } else { "upvotes" };
        clauses.push(format!("up to {most} {noun}"));
    }
    if clauses.is_empty() {
        clauses.push(if covered.is_empty() {
            "ranked by what readers upvote".to_string()
        } else {
            "ranked for your topics, best match first".to_string()
        });
    }
    let mut line = String::new();
    for clause in clauses {
        let extra = if line.is_empty() { 0 } else { 3 };
        if line.chars().count() + extra + clause.chars().count() > PREHEADER_CHARS {
            continue;
        }
        if !line.is_empty() {
            line.push_str(" · ");
        }
        line.push_str(&clause);
    }
    let mut chars = line.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => line,
    }
}

/// The distinct topics, the one with most papers first (ties: the one
/// whose first paper ranks higher).
fn topics_by_count<'a>(topics: &[Option<&'a str>]) -> Vec<&'a str> {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for t in topics.iter().flatten() {
        match counts.iter_mut().find(|(name, _)| name == t) {
            Some((_, c)) => *c += 1,
            None => counts.push((t, 1)),
        }
    }
    // A stable sort keeps the rank order among equal counts.
    counts.sort_by_key(|c| std::cmp::Reverse(c.1));
    counts.into_iter().map(|(t, _)| t).collect()
}

/// The digest's heading: "Today's papers on your topics", "This week's
/// papers…", or the trending fallback's apology for the span.
pub fn heading(fallback: bool, span: Span) -> String {
    match (fallback, span) {
        (true, _) => format!(
            "Nothing matched your topics {}; here is what is trending",
            span.phrase()
        ),
        (false, Span::Day) => "Today's papers on your topics".into(),
        (false, Span::Week) => "This week's papers on your topics".into(),
    }
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

    fn titled(title: &str) -> PaperView {
        PaperView {
            number: 1,
            title: title.into(),
            url: None,
            authors: String::new(),
            excerpt: String::new(),
            reason: String::new(),
            upvotes: None,
            code_url: None,
            pdf_url: None,
            hf_url: None,
            feedback: None,
        }
    }

    #[test]
    fn the_subject_names_the_topics_covered_most_papers_first() {
        let papers: Vec<PaperView> = (1..=10).map(|i| titled(&format!("Paper {i}"))).collect();
        let mut topics = vec![Some("LLM safety"), Some("diffusion models")];
        topics.extend([Some("diffusion models"); 6]);
        topics.extend([Some("early alignment"), None]);
        let (s, _) = subject_and_preheader(&papers, &topics, Span::Day);
        assert_eq!(s, "10 papers on diffusion models, LLM safety and 1 more");
        let (s, _) = subject_and_preheader(&papers[..2], &topics[..2], Span::Week);
        assert_eq!(s, "2 papers on LLM safety and diffusion models this week");
        let (s, _) = subject_and_preheader(&papers[..1], &[None], Span::Week);
        assert_eq!(s, "1 trending paper this week");
    }

    #[test]
    fn the_preheader_summarises_in_whole_clauses_and_never_names_a_title() {
        let mut papers: Vec<PaperView> = (1..=6)
            .map(|i| titled(&format!("A rather long title about decoding, number {i}")))
            .collect();
        papers[1].code_url = Some("https://github.com/o/r".into());
        papers[4].code_url = Some("https://github.com/o/s".into());
        papers[2].upvotes = Some(42);
        papers[3].upvotes = Some(7);
        let topics = [
            Some("decoding"),
            Some("decoding"),
            Some("RAG"),
            Some("MoE"),
            Some("KV cache"),
            Some("agents"),
        ];
        let (s, pre) = subject_and_preheader(&papers, &topics, Span::Day);
        assert_eq!(s, "6 papers on decoding, RAG and 3 more");
        assert_eq!(
            pre,
            "Also on MoE, KV cache and 1 more · 2 with code · up to 42 upvotes"
        );
        assert!(papers.iter().all(|p| !pre.contains(&p.title)));
        // Nothing to add: a plain line, not an empty one.
        let plain = [titled("Fast decoding")];
        let (_, pre) = subject_and_preheader(&plain, &[Some("decoding")], Span::Day);
        assert_eq!(pre, "Ranked for your topics, best match first");
        let (_, pre) = subject_and_preheader(&plain, &[None], Span::Day);
        assert_eq!(pre, "Ranked by what readers upvote");
    }

    #[test]
    fn a_clause_that_does_not_fit_is_left_out_whole() {
        let mut papers = vec![titled("T")];
        papers[0].upvotes = Some(3);
        let long = "a topic whose name goes on and on for a very long while indeed";
        let topics = [Some("x"), Some("y"), Some(long)];
        let pre = preheader(&papers, &topics_by_count(&topics));
        assert_eq!(
            pre,
            "Also on a topic whose name goes on and on for a very long while indeed · up to 3 upvotes"
        );
        assert!(pre.chars().count() <= PREHEADER_CHARS);
        let longer = format!("{long}, and then some more words");
        let topics = [Some("x"), Some("y"), Some(longer.as_str())];
        let pre = preheader(&papers, &topics_by_count(&topics));
        assert_eq!(pre, "Up to 3 upvotes");
    }

    #[test]
    fn a_weekly_heading_says_this_week() {
        assert_eq!(heading(false, Span::Day), "Today's papers on your topics");
        assert_eq!(
            heading(false, Span::Week),
            "This week's papers on your topics"
        );
        assert_eq!(
            heading(true, Span::Week),
            "Nothing matched your topics this week; here is what is trending"
        );
        assert_eq!(
            heading(true, Span::Day),
            "Nothing matched your topics today; here is what is trending"
        );
    }
}
