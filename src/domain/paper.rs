//! Papers as paperboy understands them, whichever source listed them.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Canonical identifier of a paper.
///
/// For arXiv papers this is the arXiv id *without* its version suffix
/// (`2606.00467`, or old style `hep-th/9901001`); the version lives in
/// [`Paper::version`]. Papers from sources without arXiv ids carry a
/// source prefix (`s2:…`). Two records with the same `PaperId` are the
/// same paper and are merged into one row.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PaperId(String);

/// Why a string is not an acceptable arXiv identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an arXiv identifier: {0:?}")]
pub struct BadPaperId(pub String);

impl PaperId {
    /// Parses an arXiv identifier in any of the shapes upstreams use
    /// (`2606.00467v2`, `arXiv:2606.00467`, `http://arxiv.org/abs/2606.00467v1`,
    /// `hep-th/9901001v3`, `oai:arXiv.org:2606.00467v1`) and returns the
    /// canonical id with the version, if one was given.
    pub fn parse_arxiv(raw: &str) -> Result<(PaperId, Option<u32>), BadPaperId> {
        let s = raw.trim();
        let s = s
            .rsplit_once("/abs/")
            .map(|(_, r)| r)
            .or_else(|| s.rsplit_once("/pdf/").map(|(_, r)| r))
            .unwrap_or(s);
        let s = s.strip_prefix("oai:arXiv.org:").unwrap_or(s);
        let s = s
            .strip_prefix("arXiv:")
            .or_else(|| s.strip_prefix("arxiv:"))
            .unwrap_or(s);
        let s = s.strip_suffix(".pdf").unwrap_or(s);
        let (base, version) = split_version(s);
        if is_new_style(base) || is_old_style(base) {
            Ok((PaperId(base.to_string()), version))
        } else {
            Err(BadPaperId(raw.to_string()))
        }
    }

    /// An id for a paper that has no arXiv id, namespaced by its source.
    pub fn external(prefix: &str, id: &str) -> PaperId {
        PaperId(format!("{prefix}:{id}"))
    }

    /// Rebuilds an id read back from storage. Storage only holds ids that
    /// were canonical when written, so no validation happens here.
    pub fn from_stored(s: String) -> PaperId {
        PaperId(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when this is an arXiv id (new or old style), so arXiv links apply.
    pub fn is_arxiv(&self) -> bool {
        !self.0.contains(':')
    }
}

impl fmt::Display for PaperId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn split_version(s: &str) -> (&str, Option<u32>) {
    if let Some(pos) = s.rfind('v') {
        let (base, v) = s.split_at(pos);
        let digits = &v[1..];
        if !digits.is_empty() && digits.len() <= 4 && digits.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(n) = digits.parse() {
                return (base, Some(n));
            }
        }
    }
    (s, None)
}

/// `YYMM.NNNN` (2007–2014) or `YYMM.NNNNN` (2015 on).
fn is_new_style(s: &str) -> bool {
    let Some((yymm, num)) = s.split_once('.') else {
        return false;
    };
    if yymm.len() != 4
        || !yymm.bytes().all(|b| b.is_ascii_digit())
        || !num.bytes().all(|b| b.is_ascii_digit())
    {
        return false;
    }
    // Five-digit sequence numbers began with 1501.
    let expected = if yymm >= "1501" { 5 } else { 4 };
    num.len() == expected
}

/// `archive(.SUBJ)/YYMMNNN`, e.g. `hep-th/9901001`, `math.AG/0601001`.
fn is_old_style(s: &str) -> bool {
    let Some((archive, num)) = s.split_once('/') else {
        return false;
    };
    !archive.is_empty()
        && archive
            .bytes()
            .all(|b| b.is_ascii_alphabetic() || b == b'-' || b == b'.')
        && archive.as_bytes()[0].is_ascii_lowercase()
        && num.len() == 7
        && num.bytes().all(|b| b.is_ascii_digit())
}

/// Which upstream reported a paper.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    HuggingFace,
    ArxivFeed,
    ArxivApi,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::HuggingFace => "huggingface",
            SourceKind::ArxivFeed => "arxiv_feed",
            SourceKind::ArxivApi => "arxiv_api",
        }
    }

    pub fn parse(s: &str) -> Option<SourceKind> {
        match s {
            "huggingface" => Some(SourceKind::HuggingFace),
            "arxiv_feed" => Some(SourceKind::ArxivFeed),
            "arxiv_api" => Some(SourceKind::ArxivApi),
            _ => None,
        }
    }
}

/// One paper with everything any source told us about it.
///
/// Text fields hold plain text with whitespace already normalised (see
/// [`normalize_whitespace`]); they are never markup, and renderers escape
/// them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Paper {
    pub id: PaperId,
    /// Latest version seen (arXiv `vN`), if known.
    pub version: Option<u32>,
    pub title: String,
    pub abstract_text: String,
    pub authors: Vec<String>,
    /// arXiv categories, primary first when known (`cs.CL`, `cs.LG`).
    pub categories: Vec<String>,
    /// First publication (v1) time, when a source says.
    pub published: Option<DateTime<Utc>>,
    /// The day the paper was listed/announced (HF daily list day or arXiv
    /// announcement day). Candidate selection for a digest uses this.
    pub listed_on: Option<NaiveDate>,
    /// Hugging Face upvotes at the last observation.
    pub upvotes: Option<i64>,
    pub comments: Option<i64>,
    pub github_repo: Option<String>,
    pub project_page: Option<String>,
    pub ai_summary: Option<String>,
    pub ai_keywords: Vec<String>,
    pub organization: Option<String>,
    pub doi: Option<String>,
    pub journal_ref: Option<String>,
    pub sources: Vec<SourceKind>,
}

impl Paper {
    /// A paper with only the required fields set; sources fill in the rest.
    pub fn new(id: PaperId, title: &str, abstract_text: &str) -> Paper {
        Paper {
            id,
            version: None,
            title: normalize_whitespace(title),
            abstract_text: normalize_whitespace(abstract_text),
            authors: Vec::new(),
            categories: Vec::new(),
            published: None,
            listed_on: None,
            upvotes: None,
            comments: None,
            github_repo: None,
            project_page: None,
            ai_summary: None,
            ai_keywords: Vec::new(),
            organization: None,
            doi: None,
            journal_ref: None,
            sources: Vec::new(),
        }
    }

    /// The paper's abstract page: arXiv for arXiv ids.
    pub fn abs_url(&self) -> Option<String> {
        self.id
            .is_arxiv()
            .then(|| format!("https://arxiv.org/abs/{}", self.id))
    }

    pub fn pdf_url(&self) -> Option<String> {
        self.id
            .is_arxiv()
            .then(|| format!("https://arxiv.org/pdf/{}", self.id))
    }

    /// The Hugging Face paper page, when HF listed the paper.
    pub fn hf_url(&self) -> Option<String> {
        (self.id.is_arxiv() && self.sources.contains(&SourceKind::HuggingFace))
            .then(|| format!("https://huggingface.co/papers/{}", self.id))
    }
}

/// One observation of a paper's upvote count, kept over time so that
/// "trending" can mean "gaining upvotes now".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpvoteObservation {
    pub at: DateTime<Utc>,
    pub upvotes: i64,
}

/// A paper as a ranking candidate: the paper plus its upvote history,
/// oldest observation first.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub paper: Paper,
    pub history: Vec<UpvoteObservation>,
}

/// Collapses hard wraps and runs of whitespace into single spaces, trims
/// the ends and drops control characters, so titles and abstracts from
/// feeds read as one clean line of text.
pub fn normalize_whitespace(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut pending_space = false;
    for c in s.chars() {
        if c.is_whitespace() {
            pending_space = !out.is_empty();
        } else if c.is_control() {
            continue;
        } else {
            if pending_space {
                out.push(' ');
                pending_space = false;
            }
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arxiv_ids_lose_their_version_and_prefixes() {
        let cases = [
            ("2606.00467v2", "2606.00467", Some(2)),
            ("2606.00467", "2606.00467", None),
            ("arXiv:2410.18057v1", "2410.18057", Some(1)),
            ("http://arxiv.org/abs/2410.18057v3", "2410.18057", Some(3)),
            ("https://arxiv.org/pdf/2410.18057v3", "2410.18057", Some(3)),
            ("oai:arXiv.org:2411.17001v1", "2411.17001", Some(1)),
            ("hep-th/9901001", "hep-th/9901001", None),
            ("hep-th/9901001v3", "hep-th/9901001", Some(3)),
            (
                "http://arxiv.org/abs/math.AG/0601001v1",
                "math.AG/0601001",
                Some(1),
            ),
            ("0704.0001", "0704.0001", None),
        ];
        for (raw, id, v) in cases {
            let (got, gv) = PaperId::parse_arxiv(raw).unwrap();
            assert_eq!(got.as_str(), id, "{raw}");
            assert_eq!(gv, v, "{raw}");
        }
    }

    #[test]
    fn malformed_arxiv_ids_are_rejected() {
        for raw in [
            "",
            "v2",
            "2606.0046",
            "26060.0467",
            "abc",
            "hep-th/99",
            "../etc/passwd",
        ] {
            assert!(PaperId::parse_arxiv(raw).is_err(), "{raw}");
        }
    }

    #[test]
    fn whitespace_is_collapsed_and_controls_dropped() {
        assert_eq!(
            normalize_whitespace("  Attention\n  is all\t\tyou\u{7}  need \r\n"),
            "Attention is all you need"
        );
    }
}
