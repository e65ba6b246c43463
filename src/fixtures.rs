//! Recorded upstream responses (`tests/fixtures/`) read back as the day's
//! candidates, for the relevance and ranking benchmarks and the tests
//! that measure the ranker on real papers. Not used by the daemon.
//!
//! This is the file reading that `rank::eval` must not do (`rank` is
//! pure); parsing is the real `sources` parsers'.

use crate::domain::{Candidate, Paper, UpvoteObservation};
use crate::sources::{parse_arxiv_api, parse_arxiv_rss, parse_hf};
use chrono::{DateTime, Utc};
use std::path::Path;

/// Every paper in the recorded listings of `dir` (Hugging Face daily
/// lists `hf_daily_papers*`, arXiv feeds `arxiv_rss*` and export-API
/// responses `arxiv_api*`), in file-name order, the first occurrence of an
/// id kept; papers with upvotes get one observation at `observed`. Other
/// files, and recorded error responses the parsers refuse, are skipped.
/// Fails only when `dir` or a listing file cannot be read.
pub fn recorded_candidates(dir: &Path, observed: DateTime<Utc>) -> std::io::Result<Vec<Candidate>> {
    let mut names: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .collect();
    names.sort();
    let mut out: Vec<Candidate> = Vec::new();
    for path in names {
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let Some(parse) = parser(&name) else {
            continue;
        };
        for paper in parse(&std::fs::read(&path)?) {
            if out.iter().any(|o| o.paper.id == paper.id) {
                continue;
            }
            let history = paper
                .upvotes
                .map(|upvotes| {
                    vec![UpvoteObservation {
                        at: observed,
                        upvotes,
                    }]
                })
                .unwrap_or_default();
            out.push(Candidate { paper, history });
        }
    }
    Ok(out)
}

/// Papers of one recorded response body; none for a body it refuses.
type Parse = fn(&[u8]) -> Vec<Paper>;

/// The parser for a recorded file, by its name's prefix.
fn parser(name: &str) -> Option<Parse> {
    if name.starts_with("hf_daily_papers") {
        Some(|b| parse_hf(b, None).unwrap_or_default())
    } else if name.starts_with("arxiv_rss") {
        Some(|b| {
            parse_arxiv_rss(b)
                .map(|l| l.items.into_iter().map(|i| i.paper).collect())
                .unwrap_or_default()
        })
    } else if name.starts_with("arxiv_api") {
        Some(|b| parse_arxiv_api(b).map(|p| p.papers).unwrap_or_default())
    } else {
        None
    }
}
