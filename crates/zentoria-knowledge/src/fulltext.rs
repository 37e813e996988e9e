//! The embedded full-text index (tantivy, BM25): one document per chunk, derived from the
//! database by tailing `knowledge_changes`. The last change applied is stored in the commit
//! itself, so the index and its position move together and a crash at any point replays
//! from the right place.
//!
//! One process per data dir holds the writer; the others open the same index read-only,
//! follow the writer's commits, and take the writer over if its holder goes away.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tantivy::query::{BooleanQuery, ConstScoreQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    FAST, Field, IndexRecordOption, STRING, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{
    Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, StopWordFilter, TextAnalyzer,
};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};
use zentoria_core::{Error, Result};

use crate::ChunkFilter;
use crate::follow::Follower;
use zentoria_store::Db;
use zentoria_store::repo::knowledge as repo;

/// Bump when the schema or analysis changes: a new directory is built from the database.
const INDEX_DIR: &str = "fulltext-v1";
const TOKENIZER: &str = "zentoria_en";
const WRITER_HEAP: usize = 64 * 1024 * 1024;
/// Changes applied per commit at most.
const SYNC_BATCH: i64 = 512;

#[derive(Clone, Copy)]
struct Fields {
    chunk_id: Field,
    file_id: Field,
    owner: Field,
    collection: Field,
    kind: Field,
    tag: Field,
    text: Field,
}

/// A keyword search over the chunks one caller may see.
#[derive(Debug, Default, Clone)]
pub struct KeywordQuery {
    pub text: String,
    pub filter: ChunkFilter,
    pub limit: usize,
}

#[derive(Clone)]
pub struct FullText {
    inner: Arc<Inner>,
}

struct Inner {
    index: Index,
    reader: IndexReader,
    fields: Fields,
    writer: Mutex<Option<IndexWriter<TantivyDocument>>>,
    follower: Follower,
    db: Db,
    dir: PathBuf,
}

/// What one chunk contributes to the index.
struct ChunkDoc {
    chunk_id: u64,
    file_id: String,
    owner: String,
    collection: Option<String>,
    kind: String,
    tags: Vec<String>,
    text: String,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let text_opts = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(TOKENIZER)
            .set_index_option(IndexRecordOption::WithFreqs),
    );
    let fields = Fields {
        chunk_id: b.add_u64_field("chunk_id", FAST),
        file_id: b.add_text_field("file_id", STRING),
        owner: b.add_text_field("owner", STRING),
        collection: b.add_text_field("collection", STRING),
        kind: b.add_text_field("kind", STRING),
        tag: b.add_text_field("tag", STRING),
        text: b.add_text_field("text", text_opts),
    };
    (b.build(), fields)
}

fn analyzer() -> TextAnalyzer {
    let mut b = TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(64))
        .filter(LowerCaser)
        .dynamic();
    if let Some(stop) = StopWordFilter::new(Language::English) {
        b = b.filter_dynamic(stop);
    }
    b.filter_dynamic(Stemmer::new(Language::English)).build()
}

fn ft_err(e: tantivy::TantivyError) -> Error {
    Error::internal(format!("full-text index: {e}"))
}

impl FullText {
    /// Opens (or creates) the index under `data_dir/index`. An index that cannot be opened is
    /// set aside and rebuilt from the database: it is derived data.
    pub fn open(data_dir: &Path, db: Db) -> Result<FullText> {
        let dir = data_dir.join("index").join(INDEX_DIR);
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::internal(format!("cannot create {}: {e}", dir.display())))?;
        let (schema, fields) = schema();
        let index = match open_index(&dir, schema.clone()) {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!(error = %e, dir = %dir.display(), "the full-text index cannot be opened; rebuilding it from the database");
                let aside = dir.with_extension(format!("broken-{}", zentoria_core::time::now_ms()));
                std::fs::rename(&dir, &aside).map_err(|e| Error::internal(e.to_string()))?;
                std::fs::create_dir_all(&dir).map_err(|e| Error::internal(e.to_string()))?;
                open_index(&dir, schema).map_err(ft_err)?
            }
        };
        index.tokenizers().register(TOKENIZER, analyzer());
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(ft_err)?;
        let applied = committed_position(&index);
        // The writer is taken when there is something to write (see `follow`), so processes
        // that only read — and an idle server — start fast and small.
        let writer = None;
        let follower = Follower::new("full-text index", applied);
        Ok(FullText {
            inner: Arc::new(Inner {
                index,
                reader,
                fields,
                writer: Mutex::new(writer),
                follower,
                db,
                dir,
            }),
        })
    }

    /// Whether this process maintains the index (holds its writer).
    pub fn is_writer(&self) -> bool {
        self.inner
            .writer
            .lock()
            .map(|w| w.is_some())
            .unwrap_or(false)
    }

    /// The last change the searchable index reflects.
    pub fn applied(&self) -> i64 {
        self.inner.follower.applied()
    }

    /// Asks the sync loop to look for changes now.
    pub fn nudge(&self) {
        self.inner.follower.nudge();
    }

    /// Keeps the index in step with the database until the returned task is aborted.
    pub fn start(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                match this.sync().await {
                    Ok(true) => continue,
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "full-text sync failed; retrying"),
                }
                this.inner.follower.idle(every).await;
            }
        })
    }

    /// Waits until the index reflects change `seq`.
    pub async fn wait_for(&self, seq: i64, timeout: Duration) -> Result<()> {
        self.inner.follower.wait_for(seq, timeout).await
    }

    /// Applies one batch of changes; `true` when more may be waiting.
    pub async fn sync(&self) -> Result<bool> {
        if !self.is_writer() {
            return self.follow().await;
        }
        let from = self.applied();
        if from < repo::pruned_through(&self.inner.db).await? {
            // Changes this index never saw are gone from the log: start over from the chunks.
            tracing::info!(
                position = from,
                "the full-text index is behind the pruned change log; rebuilding it"
            );
            self.rebuild().await?;
            return Ok(true);
        }
        let changes = repo::changes_since(&self.inner.db, from, SYNC_BATCH).await?;
        let Some(&(last, _)) = changes.last() else {
            return Ok(false);
        };
        let ids: BTreeSet<String> = changes.into_iter().map(|(_, id)| id).collect();
        let ids: Vec<String> = ids.into_iter().collect();
        let docs = load_docs(&self.inner.db, &ids).await?;
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.apply(&ids, docs, last, false))
            .await
            .map_err(|e| Error::internal(e.to_string()))??;
        self.inner.follower.set_applied(last);
        metrics::gauge!("zentoria_fulltext_position").set(last as f64);
        Ok(true)
    }

    /// Drops changes up to `through` (at most what this index applied) that are older than
    /// `retention`; only the writer prunes.
    pub async fn prune(&self, through: i64, retention: Duration) -> Result<i64> {
        if !self.is_writer() {
            return Ok(0);
        }
        let before = zentoria_core::time::now_ms() - retention.as_millis() as i64;
        repo::prune_changes(&self.inner.db, through.min(self.applied()), before).await
    }

    /// Rebuilds the whole index from the database; returns the chunks indexed.
    pub async fn rebuild(&self) -> Result<usize> {
        if !self.is_writer() {
            self.take_writer().await?;
        }
        if !self.is_writer() {
            return Err(Error::Conflict(format!(
                "another process holds the index in {}; stop it (or rebuild there)",
                self.inner.dir.display()
            )));
        }
        let position = repo::last_change(&self.inner.db).await?;
        let ids = repo::indexable_files(&self.inner.db).await?;
        let mut total = 0;
        let mut first = true;
        for batch in ids.chunks(256) {
            let docs = load_docs(&self.inner.db, batch).await?;
            total += docs.len();
            let inner = self.inner.clone();
            let wipe = std::mem::take(&mut first);
            tokio::task::spawn_blocking(move || inner.apply(&[], docs, position, wipe))
                .await
                .map_err(|e| Error::internal(e.to_string()))??;
        }
        if first {
            let inner = self.inner.clone();
            tokio::task::spawn_blocking(move || inner.apply(&[], Vec::new(), position, true))
                .await
                .map_err(|e| Error::internal(e.to_string()))??;
        }
        self.inner.follower.set_applied(position);
        // Changes made during the rebuild are replayed from `position` on (idempotently).
        self.nudge();
        Ok(total)
    }

    /// In a process without the writer: take it over if it is free, else follow the commits
    /// of the process that holds it.
    async fn follow(&self) -> Result<bool> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || -> Result<()> {
            let pos = committed_position(&inner.index);
            if pos != inner.follower.applied() {
                inner.reader.reload().map_err(ft_err)?;
                inner.follower.set_applied(pos);
            }
            Ok(())
        })
        .await
        .map_err(|e| Error::internal(e.to_string()))??;
        let from = self.applied();
        let pending = !repo::changes_since(&self.inner.db, from, 1)
            .await?
            .is_empty()
            || from < repo::pruned_through(&self.inner.db).await?;
        if !pending {
            return Ok(false);
        }
        let took = self.take_writer().await?;
        if took {
            tracing::info!("this process now maintains the full-text index");
        }
        Ok(took)
    }

    /// Takes the index writer if no other process holds it; `true` when this process has it.
    async fn take_writer(&self) -> Result<bool> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || -> Result<bool> {
            let Some(w) = try_writer(&inner.index)? else {
                return Ok(false);
            };
            // Pick up whatever the previous holder committed before writing on top of it.
            inner.reader.reload().map_err(ft_err)?;
            inner.follower.set_applied(committed_position(&inner.index));
            if let Ok(mut slot) = inner.writer.lock() {
                *slot = Some(w);
            }
            Ok(true)
        })
        .await
        .map_err(|e| Error::internal(e.to_string()))?
    }

    /// Chunk ids and BM25 scores, best first.
    pub async fn search(&self, q: KeywordQuery) -> Result<Vec<(i64, f32)>> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.search(&q))
            .await
            .map_err(|e| Error::internal(e.to_string()))?
    }

    /// Documents in the searchable index.
    pub fn num_docs(&self) -> u64 {
        self.inner.reader.searcher().num_docs()
    }
}

impl Inner {
    fn apply(
        &self,
        deleted: &[String],
        docs: Vec<ChunkDoc>,
        position: i64,
        wipe: bool,
    ) -> Result<()> {
        let mut guard = self
            .writer
            .lock()
            .map_err(|_| Error::bug("the index writer lock is poisoned"))?;
        let w = guard
            .as_mut()
            .ok_or_else(|| Error::bug("apply without the index writer"))?;
        if wipe {
            w.delete_all_documents().map_err(ft_err)?;
        }
        for id in deleted {
            w.delete_term(Term::from_field_text(self.fields.file_id, id));
        }
        let f = self.fields;
        for d in docs {
            let mut doc = TantivyDocument::default();
            doc.add_u64(f.chunk_id, d.chunk_id);
            doc.add_text(f.file_id, &d.file_id);
            doc.add_text(f.owner, &d.owner);
            if let Some(c) = &d.collection {
                doc.add_text(f.collection, c);
            }
            doc.add_text(f.kind, &d.kind);
            for t in &d.tags {
                doc.add_text(f.tag, t);
            }
            doc.add_text(f.text, &d.text);
            w.add_document(doc).map_err(ft_err)?;
        }
        let mut commit = w.prepare_commit().map_err(ft_err)?;
        commit.set_payload(&position.to_string());
        commit.commit().map_err(ft_err)?;
        self.reader.reload().map_err(ft_err)?;
        Ok(())
    }

    fn search(&self, q: &KeywordQuery) -> Result<Vec<(i64, f32)>> {
        let mut analyzer = self
            .index
            .tokenizers()
            .get(TOKENIZER)
            .ok_or_else(|| Error::bug("the analyzer is not registered"))?;
        let mut terms = BTreeSet::new();
        let mut stream = analyzer.token_stream(&q.text);
        while let Some(tok) = stream.next() {
            terms.insert(tok.text.clone());
        }
        if terms.is_empty() || q.limit == 0 {
            return Ok(Vec::new());
        }
        let f = self.fields;
        let should: Vec<(Occur, Box<dyn Query>)> = terms
            .into_iter()
            .map(|t| {
                let q: Box<dyn Query> = Box::new(TermQuery::new(
                    Term::from_field_text(f.text, &t),
                    IndexRecordOption::WithFreqs,
                ));
                (Occur::Should, q)
            })
            .collect();
        let mut clauses: Vec<(Occur, Box<dyn Query>)> =
            vec![(Occur::Must, Box::new(BooleanQuery::new(should)))];
        let mut filter = |field: Field, values: &[&str]| {
            if values.is_empty() {
                return;
            }
            let any: Vec<(Occur, Box<dyn Query>)> = values
                .iter()
                .map(|v| {
                    let q: Box<dyn Query> = Box::new(TermQuery::new(
                        Term::from_field_text(field, v),
                        IndexRecordOption::Basic,
                    ));
                    (Occur::Should, q)
                })
                .collect();
            clauses.push((
                Occur::Must,
                Box::new(ConstScoreQuery::new(Box::new(BooleanQuery::new(any)), 0.0)),
            ));
        };
        let q_filter = &q.filter;
        if let Some(o) = &q_filter.owner {
            filter(f.owner, &[o]);
        }
        if let Some(c) = &q_filter.collection {
            filter(f.collection, &[c]);
        }
        filter(
            f.kind,
            &q_filter
                .kinds
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        );
        filter(
            f.tag,
            &q_filter.tags.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        filter(
            f.file_id,
            &q_filter
                .file_ids
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        );
        let query = BooleanQuery::new(clauses);
        let searcher = self.reader.searcher();
        let top = searcher
            .search(
                &query,
                &tantivy::collector::TopDocs::with_limit(q.limit).order_by_score(),
            )
            .map_err(ft_err)?;
        let mut out = Vec::with_capacity(top.len());
        for (score, addr) in top {
            let column = searcher
                .segment_reader(addr.segment_ord)
                .fast_fields()
                .u64("chunk_id")
                .map_err(ft_err)?;
            if let Some(id) = column.first(addr.doc_id) {
                out.push((id as i64, score));
            }
        }
        Ok(out)
    }
}

fn open_index(dir: &Path, schema: Schema) -> tantivy::Result<Index> {
    let mmap = tantivy::directory::MmapDirectory::open(dir)?;
    Index::open_or_create(mmap, schema)
}

fn try_writer(index: &Index) -> Result<Option<IndexWriter<TantivyDocument>>> {
    match index.writer_with_num_threads(1, WRITER_HEAP) {
        Ok(w) => Ok(Some(w)),
        Err(tantivy::TantivyError::LockFailure(..)) => Ok(None),
        Err(e) => Err(ft_err(e)),
    }
}

fn committed_position(index: &Index) -> i64 {
    index
        .load_metas()
        .ok()
        .and_then(|m| m.payload)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0)
}

/// The chunks of the given files that belong in the index (files being ingested or ready).
async fn load_docs(db: &Db, file_ids: &[String]) -> Result<Vec<ChunkDoc>> {
    let files = repo::files_by_ids(db, file_ids).await?;
    let tags = repo::tags_of(db, file_ids).await?;
    let mut docs = Vec::new();
    for f in files {
        if !matches!(f.status.as_str(), "indexing" | "ready") {
            continue;
        }
        let file_tags: Vec<String> = tags
            .iter()
            .filter(|(id, _)| *id == f.id)
            .map(|(_, t)| t.clone())
            .collect();
        for c in repo::chunks_of_file(db, &f.id).await? {
            docs.push(ChunkDoc {
                chunk_id: c.id as u64,
                file_id: f.id.clone(),
                owner: f.owner_id.clone(),
                collection: f.collection_id.clone(),
                kind: f.kind.clone(),
                tags: file_tags.clone(),
                text: c.text,
            });
        }
    }
    Ok(docs)
}
