//! Paper and topic vectors (sentence embeddings), tagged with the model
//! identity that made them. Vectors are stored as f32 little-endian blobs.

use super::papers::{row_to_paper, COLUMNS};
use super::{ts, Result, Store, StoreError};
use crate::domain::{Paper, PaperId};
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::HashMap;

/// How far the papers are embedded for one model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EmbeddingProgress {
    /// Papers in the embedding window with a vector of this model.
    pub done: u64,
    /// Papers in the embedding window.
    pub total: u64,
}

fn to_blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn from_blob(b: &[u8], dims: i64) -> Result<Vec<f32>> {
    if dims <= 0 || b.len() != 4 * dims as usize {
        return Err(StoreError::Corrupt(format!(
            "embedding of {} bytes for {dims} dimensions",
            b.len()
        )));
    }
    Ok(b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

impl Store {
    /// Papers listed on or after `listed_since` that have no vector of
    /// `model` (none yet, or one of another model), newest first, at most
    /// `limit`.
    pub async fn papers_to_embed(
        &self,
        model: &str,
        listed_since: NaiveDate,
        limit: usize,
    ) -> Result<Vec<Paper>> {
        let cols: String = COLUMNS
            .split(',')
            .map(|c| format!("p.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ");
        let rows = sqlx::query(&format!(
            "SELECT {cols} FROM papers p LEFT JOIN paper_embeddings e \
             ON e.paper_id = p.id AND e.model = ? \
             WHERE p.listed_on >= ? AND e.paper_id IS NULL \
             ORDER BY p.listed_on DESC, p.id LIMIT ?"
        ))
        .bind(model)
        .bind(listed_since.format("%Y-%m-%d").to_string())
        .bind(limit as i64)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(|r| Ok(row_to_paper(r)?.0)).collect()
    }

    /// Stores the vectors of `model` for papers, replacing any previous
    /// vector of those papers, in one transaction.
    pub async fn save_paper_embeddings(
        &self,
        model: &str,
        vectors: &[(PaperId, Vec<f32>)],
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        for (id, v) in vectors {
            sqlx::query(
                "INSERT INTO paper_embeddings (paper_id, model, dims, vector, embedded_at) \
                 VALUES (?, ?, ?, ?, ?) ON CONFLICT (paper_id) DO UPDATE SET \
                 model = excluded.model, dims = excluded.dims, vector = excluded.vector, \
                 embedded_at = excluded.embedded_at",
            )
            .bind(id.as_str())
            .bind(model)
            .bind(v.len() as i64)
            .bind(to_blob(v))
            .bind(ts(now))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Vectors of `model` of the papers listed on or after `listed_since`
    /// (the candidates of a run), by paper id.
    pub async fn candidate_embeddings(
        &self,
        model: &str,
        listed_since: NaiveDate,
    ) -> Result<HashMap<PaperId, Vec<f32>>> {
        let rows: Vec<(String, i64, Vec<u8>)> = sqlx::query_as(
            "SELECT e.paper_id, e.dims, e.vector FROM paper_embeddings e \
             JOIN papers p ON p.id = e.paper_id WHERE e.model = ? AND p.listed_on >= ?",
        )
        .bind(model)
        .bind(listed_since.format("%Y-%m-%d").to_string())
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|(id, dims, blob)| Ok((PaperId::from_stored(id), from_blob(&blob, dims)?)))
            .collect()
    }

    /// Vectors of `model` of the given papers, whenever they were listed
    /// (for per-reader feedback on papers already sent).
    pub async fn paper_embeddings(
        &self,
        model: &str,
        ids: &[PaperId],
    ) -> Result<HashMap<PaperId, Vec<f32>>> {
        let mut out = HashMap::with_capacity(ids.len());
        for chunk in super::shaped_chunks(ids, 500) {
            let marks = vec!["?"; chunk.len()].join(", ");
            let sql = format!(
                "SELECT paper_id, dims, vector FROM paper_embeddings \
                 WHERE model = ? AND paper_id IN ({marks})"
            );
            let mut q = sqlx::query_as::<_, (String, i64, Vec<u8>)>(&sql).bind(model);
            for id in chunk {
                q = q.bind(id.as_str());
            }
            for (id, dims, blob) in q.fetch_all(self.pool()).await? {
                out.insert(PaperId::from_stored(id), from_blob(&blob, dims)?);
            }
        }
        Ok(out)
    }

    /// Papers listed on or after `listed_since`, and how many of them have
    /// a vector of `model`.
    pub async fn embedding_progress(
        &self,
        model: &str,
        listed_since: NaiveDate,
    ) -> Result<EmbeddingProgress> {
        let (total, done): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), COUNT(e.paper_id) FROM papers p LEFT JOIN paper_embeddings e \
             ON e.paper_id = p.id AND e.model = ? WHERE p.listed_on >= ?",
        )
        .bind(model)
        .bind(listed_since.format("%Y-%m-%d").to_string())
        .fetch_one(self.pool())
        .await?;
        Ok(EmbeddingProgress {
            done: done as u64,
            total: total as u64,
        })
    }

    /// Stored topic vectors of `model` for these embedded texts.
    pub async fn topic_embeddings(
        &self,
        model: &str,
        texts: &[String],
    ) -> Result<HashMap<String, Vec<f32>>> {
        let mut out = HashMap::with_capacity(texts.len());
        for chunk in super::shaped_chunks(texts, 500) {
            let marks = vec!["?"; chunk.len()].join(", ");
            let sql = format!(
                "SELECT text, dims, vector FROM topic_embeddings WHERE model = ? AND text IN ({marks})"
            );
            let mut q = sqlx::query_as::<_, (String, i64, Vec<u8>)>(&sql).bind(model);
            for t in chunk {
                q = q.bind(t);
            }
            for (text, dims, blob) in q.fetch_all(self.pool()).await? {
                out.insert(text, from_blob(&blob, dims)?);
            }
        }
        Ok(out)
    }

    /// Stores topic vectors of `model`; rows of other models are dropped
    /// (a model change makes them useless).
    pub async fn save_topic_embeddings(
        &self,
        model: &str,
        vectors: &[(String, Vec<f32>)],
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM topic_embeddings WHERE model <> ?")
            .bind(model)
            .execute(&mut *tx)
            .await?;
        for (text, v) in vectors {
            sqlx::query(
                "INSERT INTO topic_embeddings (model, text, dims, vector, used_at) \
                 VALUES (?, ?, ?, ?, ?) ON CONFLICT (model, text) DO UPDATE SET \
                 dims = excluded.dims, vector = excluded.vector, used_at = excluded.used_at",
            )
            .bind(model)
            .bind(text)
            .bind(v.len() as i64)
            .bind(to_blob(v))
            .bind(ts(now))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every distinct topic of active subscribers (for embedding topics
    /// ahead of a digest run).
    pub async fn active_topics(&self) -> Result<Vec<String>> {
        let topics: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT j.value FROM subscribers s, json_each(s.topics) j \
             WHERE s.state = 'active' ORDER BY j.value",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(topics)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_round_trip_and_a_wrong_length_is_corrupt() {
        let v = vec![0.25f32, -1.0, 3.5];
        assert_eq!(from_blob(&to_blob(&v), 3).unwrap(), v);
        assert!(matches!(
            from_blob(&to_blob(&v), 4),
            Err(StoreError::Corrupt(_))
        ));
    }
}
