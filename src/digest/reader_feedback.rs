//! Each reader's feedback as the ranker needs it: the papers it is about,
//! with their stored vectors of the loaded model, so feedback on papers
//! older than the day's candidates still works by meaning.

use crate::app::App;
use crate::domain::{PaperId, SubscriberId};
use crate::rank::ReaderFeedback;
use chrono::{DateTime, Utc};
use std::collections::HashMap;

/// The feedback of `ids`, by subscriber (absent: none given). With a model
/// loaded, each feedback paper carries its stored vector when it has one;
/// a paper without one leaves that reader's feedback on the lexical side
/// (`rank::feedback`), which is also what happens when reading the
/// vectors fails (logged).
pub async fn load(
    app: &App,
    ids: &[SubscriberId],
    now: DateTime<Utc>,
) -> anyhow::Result<HashMap<SubscriberId, ReaderFeedback>> {
    let entries = app.store.feedback_with_papers(ids).await?;
    let mut out: HashMap<SubscriberId, ReaderFeedback> = entries
        .into_iter()
        .map(|(id, list)| (id, ReaderFeedback::from_entries(list, now)))
        .collect();
    let Some(model) = app.semantic.model() else {
        return Ok(out);
    };
    let mut papers: Vec<PaperId> = out
        .values()
        .flat_map(|f| f.items.iter().map(|i| i.paper.id.clone()))
        .collect();
    papers.sort();
    papers.dedup();
    if papers.is_empty() {
        return Ok(out);
    }
    match app.store.paper_embeddings(&model.identity, &papers).await {
        Ok(vectors) => {
            for f in out.values_mut() {
                f.attach_vectors(&vectors);
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot read feedback paper vectors"),
    }
    Ok(out)
}

/// [`load`] for one subscriber: their feedback, or none.
pub async fn load_one(
    app: &App,
    id: SubscriberId,
    now: DateTime<Utc>,
) -> anyhow::Result<ReaderFeedback> {
    Ok(load(app, &[id], now)
        .await?
        .remove(&id)
        .unwrap_or_else(|| ReaderFeedback::none(now)))
}
