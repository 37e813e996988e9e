//! Search over the chunks a caller may see: BM25 keyword search today; semantic and hybrid
//! modes need an embedder and say so when none is configured.

use std::collections::HashMap;
use std::time::Instant;

use zentoria_core::{Error, Result, Scope};
use zentoria_platform::Principal;
use zentoria_store::repo::knowledge as repo;

use crate::fulltext::KeywordQuery;
use crate::{Citation, Knowledge, SearchHit, SearchMode, SearchRequest, SearchResponse};

const MAX_TOP_K: usize = 100;
const MAX_QUERY_CHARS: usize = 4096;

impl Knowledge {
    pub async fn search(&self, p: &Principal, req: SearchRequest) -> Result<SearchResponse> {
        p.require(Scope::FilesRead)?;
        let started = Instant::now();
        let query = req.query.trim();
        if query.is_empty() {
            return Err(Error::invalid("the query is empty"));
        }
        if query.chars().count() > MAX_QUERY_CHARS {
            return Err(Error::invalid(format!(
                "the query is longer than {MAX_QUERY_CHARS} characters"
            )));
        }
        let top_k = req.top_k.unwrap_or(10);
        if !(1..=MAX_TOP_K).contains(&top_k) {
            return Err(Error::invalid(format!(
                "top_k must be between 1 and {MAX_TOP_K}"
            )));
        }
        for k in &req.filters.kinds {
            if k.parse::<zentoria_extract::Kind>().is_err() {
                return Err(Error::invalid(format!(
                    "unknown type {k:?} in filters.types; one of text, markdown, html, pdf, docx, csv, json, code"
                )));
            }
        }
        if req.mode != SearchMode::Keyword {
            return Err(Error::invalid(
                "semantic and hybrid search need an embedder, and none is configured; \
                 use mode \"keyword\" (embedders arrive with the knowledge.embedder setting)",
            ));
        }
        let collection = match &req.collection {
            Some(c) => Some(self.resolve_collection(p, c).await?.id),
            None => None,
        };
        let q = KeywordQuery {
            text: query.to_owned(),
            owner: (!p.is_admin()).then(|| p.user_id.clone()),
            collection,
            kinds: req.filters.kinds.clone(),
            tags: req.filters.tags.clone(),
            file_ids: req.filters.file_ids.clone(),
            limit: top_k,
        };
        let ranked = self.inner.fulltext.search(q).await?;
        let hits = self.hydrate(&ranked).await?;
        metrics::histogram!("zentoria_search_seconds", "mode" => "keyword")
            .record(started.elapsed().as_secs_f64());
        Ok(SearchResponse {
            query: query.to_owned(),
            mode: req.mode,
            hits,
            took_ms: started.elapsed().as_secs_f64() * 1000.0,
        })
    }

    /// Turns ranked chunk ids into hits with their text, file and citation; chunks deleted
    /// since the index saw them are left out.
    async fn hydrate(&self, ranked: &[(i64, f32)]) -> Result<Vec<SearchHit>> {
        let ids: Vec<i64> = ranked.iter().map(|(id, _)| *id).collect();
        let chunks = repo::chunks_by_ids(&self.inner.db, &ids).await?;
        let mut file_ids: Vec<String> = chunks.iter().map(|c| c.file_id.clone()).collect();
        file_ids.sort();
        file_ids.dedup();
        let files: HashMap<String, repo::FileRow> = repo::files_by_ids(&self.inner.db, &file_ids)
            .await?
            .into_iter()
            .map(|f| (f.id.clone(), f))
            .collect();
        let mut by_id: HashMap<i64, repo::ChunkRow> =
            chunks.into_iter().map(|c| (c.id, c)).collect();
        let mut hits = Vec::with_capacity(ranked.len());
        for (id, score) in ranked {
            let Some(c) = by_id.remove(id) else { continue };
            let Some(f) = files.get(&c.file_id) else {
                continue;
            };
            hits.push(SearchHit {
                chunk_id: c.id,
                file_id: c.file_id,
                file_name: f.name.clone(),
                collection_id: f.collection_id.clone(),
                text: c.text,
                score: *score,
                citation: Citation {
                    page: c.page,
                    start_char: c.start_char,
                    end_char: c.end_char,
                    heading: c.heading,
                    chunk_index: c.ord,
                },
            });
        }
        Ok(hits)
    }
}
