//! `paperboy preview`: what a profile would receive from the stored
//! papers now.

use super::{prepare_semantic, ListFormat};
use crate::app::{App, Overrides};
use crate::config::Config;
use anyhow::bail;

/// Which digest `paperboy preview` shows: the next one of a reader with
/// this frequency whose previous digest covered up to `--since`.
#[derive(Debug, Clone, clap::Args)]
pub struct PreviewWindow {
    /// daily, weekdays, weekly (on Monday) or weekly:DAY, e.g.
    /// weekly:friday.
    #[arg(long, default_value = "daily", value_parser = parse_frequency)]
    frequency: crate::domain::Frequency,
    /// The last listing day the reader's previous digest covered
    /// (YYYY-MM-DD); without it, a first digest.
    #[arg(long)]
    since: Option<chrono::NaiveDate>,
}

fn parse_frequency(s: &str) -> Result<crate::domain::Frequency, String> {
    let s = s.trim().to_ascii_lowercase();
    let s = if s == "weekly" { "weekly:monday" } else { &s };
    crate::domain::Frequency::decode(s).ok_or_else(|| {
        format!("{s:?} is not a frequency: use daily, weekdays, weekly or weekly:DAY (e.g. weekly:friday)")
    })
}

impl PreviewWindow {
    /// The window of the reader's next digest, as of `today`.
    fn window(&self, config: &Config, today: chrono::NaiveDate) -> crate::domain::Window {
        let day = crate::domain::next_digest_day(self.frequency, today);
        crate::domain::window(self.frequency, self.since, day, config.window_limits())
    }
}

pub(super) async fn preview(
    config: Config,
    topics: Vec<String>,
    excluded: Vec<String>,
    authors: Vec<String>,
    limit: usize,
    format: ListFormat,
    which: PreviewWindow,
) -> anyhow::Result<()> {
    // `--topic "RAG, diffusion models"` is two topics, as on the forms.
    let topics: Vec<String> = topics
        .iter()
        .flat_map(|t| crate::domain::parse_topics(t))
        .collect();
    if topics.is_empty() && authors.is_empty() {
        bail!("give at least one --topic or --author");
    }
    let app = App::build(config, Overrides::default()).await?;
    let now = app.now();
    let semantic = prepare_semantic(&app).await;
    let window = which.window(&app.config, now.date_naive());
    let picker = crate::digest::RankPicker::for_window(&app, &window, now).await?;
    let mut profile = crate::rank::Profile::topics(topics);
    profile.excluded = excluded;
    profile.authors = authors;
    let picks = picker.preview(&app, &profile, limit.clamp(1, 100)).await;
    let views: Vec<_> = picks.iter().map(|p| p.view(picker.candidates())).collect();
    match format {
        ListFormat::Json => {
            eprintln!("Ranking {}", semantic.describe());
            println!("{}", serde_json::to_string_pretty(&views)?)
        }
        ListFormat::Text => {
            println!("Ranking {}", semantic.describe());
            println!(
                "{} digest of {}: papers listed {}",
                which.frequency.encode(),
                window.until.format("%A %-d %B"),
                window.describe()
            );
            if views.is_empty() {
                println!(
                    "{}",
                    preview_empty_text(&app, picker.candidates().len(), &window.describe()).await?
                );
            }
            for (i, v) in views.iter().enumerate() {
                println!(
                    "{:2}. {} [{}] score {:.2}\n    {}",
                    i + 1,
                    v.title,
                    v.id,
                    v.score,
                    v.reason
                );
            }
        }
    }
    app.store.close().await;
    Ok(())
}

/// Why `paperboy preview` found nothing: no paper stored at all, none in
/// the candidate window, or candidates that these topics do not match.
async fn preview_empty_text(
    app: &App,
    candidates: usize,
    searched: &str,
) -> anyhow::Result<String> {
    Ok(if candidates > 0 {
        format!(
            "None of the {candidates} candidates listed {searched} matches these topics. Try broader words or fewer exclusions."
        )
    } else if app.store.papers_stored().await? == 0 {
        "No papers are stored yet. Run `paperboy fetch` first.".to_string()
    } else {
        format!("No stored paper was listed {searched}. Run `paperboy fetch` to get today's.")
    })
}
