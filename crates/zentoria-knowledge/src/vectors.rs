//! The embedded vector index (HNSW, `zentoria-vectors`): one vector per chunk, derived from
//! the `chunk_vectors` table by tailing `knowledge_changes`, exactly like the full-text index.
//!
//! Every process keeps its own copy in memory (the engine cannot be shared between
//! processes) and follows the change log itself. One process per data dir — the one holding
//! `writer.lock` — also saves snapshots, with the embedder id and the last change applied in
//! the same atomic write, so a restart loads the snapshot and replays only what came after.
//! Vectors are never computed here: they live in the database, so a rebuild costs index
//! inserts, not embeddings.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use zentoria_core::{Error, Result};

use crate::ChunkFilter;
use crate::follow::Follower;
use zentoria_store::Db;
use zentoria_store::repo::knowledge as repo;
use zentoria_vectors::VectorIndex;

/// Bump when the layout changes: the snapshot is then rebuilt from the database.
const INDEX_DIR: &str = "vectors-v1";
/// Changes applied per step at most.
const SYNC_BATCH: i64 = 512;
/// Files loaded per query during a rebuild.
const REBUILD_BATCH: usize = 256;
/// While changes keep coming, a snapshot is saved at most this often (and always when idle).
const SAVE_EVERY: Duration = Duration::from_secs(60);

/// What a chunk's file contributes to filters.
#[derive(Debug)]
struct FileMeta {
    id: String,
    owner: String,
    collection: Option<String>,
    kind: String,
    tags: Vec<String>,
}

/// A vector search over the chunks one caller may see.
#[derive(Debug, Default, Clone)]
pub struct VectorQuery {
    pub vector: Vec<f32>,
    pub filter: ChunkFilter,
    pub limit: usize,
}

/// Whether the filter admits a chunk of this file.
fn admits(q: &ChunkFilter, f: &FileMeta) -> bool {
    q.owner.as_ref().is_none_or(|o| *o == f.owner)
        && q.collection
            .as_ref()
            .is_none_or(|c| f.collection.as_ref() == Some(c))
        && (q.kinds.is_empty() || q.kinds.contains(&f.kind))
        && (q.tags.is_empty() || q.tags.iter().any(|t| f.tags.contains(t)))
        && (q.file_ids.is_empty() || q.file_ids.contains(&f.id))
}

/// The in-memory index and what filters need to know about its chunks.
#[derive(Default)]
struct State {
    /// Created with the dimension of the first vector it receives.
    index: Option<VectorIndex>,
    chunk_file: HashMap<u64, Arc<FileMeta>>,
    file_chunks: HashMap<String, Vec<u64>>,
}

impl State {
    fn remove_file(&mut self, file_id: &str) -> Result<()> {
        let Some(chunks) = self.file_chunks.remove(file_id) else {
            return Ok(());
        };
        for c in chunks {
            self.chunk_file.remove(&c);
            if let Some(index) = &mut self.index {
                index.remove(c).map_err(vec_err)?;
            }
        }
        Ok(())
    }

    /// Adds files' vectors in one batch, which the engine spreads over its threads.
    fn add_files(&mut self, files: Vec<FileVectors>) -> Result<()> {
        let Some(dim) = files
            .iter()
            .find_map(|f| f.vectors.first().map(|(_, v)| v.len()))
        else {
            return Ok(());
        };
        if let Some(bad) = files
            .iter()
            .find(|f| f.vectors.iter().any(|(_, v)| v.len() != dim))
        {
            return Err(Error::internal(format!(
                "file {} has vectors of different dimensions; run `zentoria reindex` after \
                 changing the embedder",
                bad.meta.id
            )));
        }
        let index = match &mut self.index {
            Some(i) if i.dim() == dim => i,
            Some(i) => {
                return Err(Error::internal(format!(
                    "the stored vectors have {dim} dimensions and the index {}; run `zentoria \
                     reindex` after changing the embedder",
                    i.dim()
                )));
            }
            slot => slot.insert(VectorIndex::create(dim).map_err(vec_err)?),
        };
        let mut batch = Vec::with_capacity(files.iter().map(|f| f.vectors.len()).sum());
        for f in files {
            let ids: Vec<u64> = f.vectors.iter().map(|(id, _)| *id).collect();
            for id in &ids {
                self.chunk_file.insert(*id, f.meta.clone());
            }
            self.file_chunks.insert(f.meta.id.clone(), ids);
            batch.extend(f.vectors);
        }
        index.upsert_batch(&batch).map_err(vec_err)?;
        Ok(())
    }
}

/// A file's vectors as loaded from the database.
struct FileVectors {
    meta: Arc<FileMeta>,
    vectors: Vec<(u64, Vec<f32>)>,
}

#[derive(Clone)]
pub struct Vectors {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    embedder: String,
    dir: PathBuf,
    state: RwLock<State>,
    /// Held by the process that saves snapshots.
    writer_lock: Mutex<Option<File>>,
    follower: Follower,
    /// `false` until the snapshot (or a rebuild) is loaded.
    loaded: watch::Sender<bool>,
    /// The position of the last snapshot saved (or loaded).
    saved: Mutex<(i64, Instant)>,
}

fn vec_err(e: zentoria_vectors::VectorError) -> Error {
    Error::internal(format!("vector index: {e}"))
}

fn join_err(e: tokio::task::JoinError) -> Error {
    Error::internal(e.to_string())
}

/// Little-endian f32 bytes, as stored in `chunk_vectors`.
pub fn encode(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The inverse of [`encode`]; `None` when the length is not a whole number of f32s.
pub fn decode(bytes: &[u8]) -> Option<Vec<f32>> {
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
    )
}

impl Vectors {
    /// Prepares the index for vectors made by `embedder` (its id) under `data_dir/index`.
    /// Nothing is loaded yet: [`Vectors::start`] loads the snapshot in the background.
    pub fn open(data_dir: &Path, db: Db, embedder: String) -> Result<Vectors> {
        let dir = data_dir.join("index").join(INDEX_DIR);
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::internal(format!("cannot create {}: {e}", dir.display())))?;
        let follower = Follower::new("vector index", 0);
        let (loaded, _) = watch::channel(false);
        Ok(Vectors {
            inner: Arc::new(Inner {
                db,
                embedder,
                dir,
                state: RwLock::new(State::default()),
                writer_lock: Mutex::new(None),
                follower,
                loaded,
                saved: Mutex::new((0, Instant::now())),
            }),
        })
    }

    pub fn embedder(&self) -> &str {
        &self.inner.embedder
    }

    /// The last change the index reflects.
    pub fn applied(&self) -> i64 {
        self.inner.follower.applied()
    }

    /// Vectors in the index.
    pub fn len(&self) -> usize {
        self.inner
            .state
            .read()
            .map(|s| s.index.as_ref().map_or(0, VectorIndex::len))
            .unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The dimension of the indexed vectors (0 while the index is empty).
    pub fn dimension(&self) -> usize {
        self.inner
            .state
            .read()
            .map(|s| s.index.as_ref().map_or(0, VectorIndex::dim))
            .unwrap_or(0)
    }

    pub fn nudge(&self) {
        self.inner.follower.nudge();
    }

    /// Loads the snapshot, then keeps the index in step with the database until the task is
    /// aborted.
    pub fn start(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                match this.load().await {
                    Ok(()) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "loading the vector index failed; retrying");
                        tokio::time::sleep(every * 4).await;
                    }
                }
            }
            loop {
                match this.sync().await {
                    Ok(true) => {
                        this.save_if_due(false).await;
                        continue;
                    }
                    Ok(false) => this.save_if_due(true).await,
                    Err(e) => tracing::warn!(error = %e, "vector index sync failed; retrying"),
                }
                this.inner.follower.idle(every).await;
            }
        })
    }

    /// Waits until the index reflects change `seq`.
    pub async fn wait_for(&self, seq: i64, timeout: Duration) -> Result<()> {
        self.inner.follower.wait_for(seq, timeout).await
    }

    /// Loads the index if that has not happened yet and applies every pending change (for
    /// short-lived processes such as the CLI, which do not run [`Vectors::start`]).
    pub async fn catch_up(&self) -> Result<()> {
        if !*self.inner.loaded.borrow() {
            self.load().await?;
        }
        while self.sync().await? {}
        Ok(())
    }

    /// Waits (up to `timeout`) for the index to be loaded at startup.
    pub async fn wait_loaded(&self, timeout: Duration) -> Result<()> {
        let mut rx = self.inner.loaded.subscribe();
        match tokio::time::timeout(timeout, rx.wait_for(|l| *l)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(Error::Unavailable(
                "the vector index is still loading; try again shortly".into(),
            )),
        }
    }

    /// Takes the snapshot lock when free, loads the snapshot if it was made for this
    /// embedder, and rebuilds from the database when there is none (or it is unusable).
    async fn load(&self) -> Result<()> {
        let inner = self.inner.clone();
        let snapshot = tokio::task::spawn_blocking(move || inner.read_snapshot())
            .await
            .map_err(join_err)??;
        let Some((index, position)) = snapshot else {
            self.rebuild().await?;
            return Ok(());
        };
        if position < repo::pruned_through(&self.inner.db).await? {
            tracing::info!(
                position,
                "the vector snapshot is behind the pruned change log; rebuilding it"
            );
            self.rebuild().await?;
            return Ok(());
        }
        // Filters need each chunk's file; the snapshot holds only ids and vectors. Files
        // changed since the snapshot are reloaded by the replay that follows.
        let files = repo::indexable_files(&self.inner.db).await?;
        let mut state = State {
            index: Some(index),
            ..State::default()
        };
        for batch in files.chunks(REBUILD_BATCH) {
            let metas = load_metas(&self.inner.db, batch).await?;
            let ids =
                repo::vector_ids_of_files(&self.inner.db, &self.inner.embedder, batch).await?;
            for (chunk, file) in ids {
                if let Some(m) = metas.get(&file) {
                    state.chunk_file.insert(chunk as u64, m.clone());
                    state
                        .file_chunks
                        .entry(file)
                        .or_default()
                        .push(chunk as u64);
                }
            }
        }
        // Vectors whose chunk is gone (a file deleted since) have no file: drop them.
        if let Some(index) = &mut state.index {
            let stale: Vec<u64> = index
                .ids()
                .iter()
                .copied()
                .filter(|id| !state.chunk_file.contains_key(id))
                .collect();
            for id in stale {
                index.remove(id).map_err(vec_err)?;
            }
        }
        let n = state.index.as_ref().map_or(0, VectorIndex::len);
        *self.inner.state.write().map_err(poisoned)? = state;
        self.inner.follower.set_applied(position);
        *self.inner.saved.lock().map_err(poisoned)? = (position, Instant::now());
        self.inner.loaded.send_replace(true);
        tracing::info!(vectors = n, position, "vector index loaded");
        Ok(())
    }

    /// Applies one batch of changes; `true` when more may be waiting.
    pub async fn sync(&self) -> Result<bool> {
        let from = self.applied();
        if from < repo::pruned_through(&self.inner.db).await? {
            tracing::info!(
                position = from,
                "the vector index is behind the pruned change log; rebuilding it"
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
        let loaded = load_vectors(&self.inner.db, &self.inner.embedder, &ids).await?;
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || -> Result<()> {
            let mut state = inner.state.write().map_err(poisoned)?;
            for id in &ids {
                state.remove_file(id)?;
            }
            state.add_files(loaded)
        })
        .await
        .map_err(join_err)??;
        self.inner.follower.set_applied(last);
        metrics::gauge!("zentoria_vectors_position").set(last as f64);
        metrics::gauge!("zentoria_vectors").set(self.len() as f64);
        Ok(true)
    }

    /// Rebuilds the index from the vectors in the database (no embedding); returns the
    /// vectors indexed. Searches keep using the old index until the new one is complete.
    pub async fn rebuild(&self) -> Result<usize> {
        let position = repo::last_change(&self.inner.db).await?;
        let files = repo::indexable_files(&self.inner.db).await?;
        let mut fresh = State::default();
        let mut total = 0;
        for batch in files.chunks(REBUILD_BATCH) {
            let loaded = load_vectors(&self.inner.db, &self.inner.embedder, batch).await?;
            total += loaded.iter().map(|f| f.vectors.len()).sum::<usize>();
            fresh = tokio::task::spawn_blocking(move || -> Result<State> {
                fresh.add_files(loaded)?;
                Ok(fresh)
            })
            .await
            .map_err(join_err)??;
        }
        *self.inner.state.write().map_err(poisoned)? = fresh;
        self.inner.follower.set_applied(position);
        self.inner.loaded.send_replace(true);
        // Make sure the new index reaches disk even if nothing changes afterwards.
        *self.inner.saved.lock().map_err(poisoned)? = (-1, Instant::now() - SAVE_EVERY);
        self.nudge();
        Ok(total)
    }

    /// Saves a snapshot when this process holds the lock and the index moved since the last
    /// one: right away when `idle`, else at most every [`SAVE_EVERY`].
    async fn save_if_due(&self, idle: bool) {
        let position = self.applied();
        let due = match self.inner.saved.lock() {
            Ok(s) => s.0 != position && (idle || s.1.elapsed() >= SAVE_EVERY),
            Err(_) => false,
        };
        if !due {
            return;
        }
        if let Err(e) = self.save().await {
            tracing::warn!(error = %e, "saving the vector index failed");
        }
    }

    /// Saves a snapshot now if this process holds (or can take) the snapshot lock; `false`
    /// when another process holds it.
    pub async fn save(&self) -> Result<bool> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.save())
            .await
            .map_err(join_err)?
    }

    /// Chunk ids and cosine similarities, best first.
    pub async fn search(&self, q: VectorQuery) -> Result<Vec<(i64, f32)>> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.search(&q))
            .await
            .map_err(join_err)?
    }
}

fn poisoned<T>(_: T) -> Error {
    Error::bug("the vector index lock is poisoned")
}

impl Inner {
    fn take_lock(&self) -> Result<bool> {
        let mut slot = self.writer_lock.lock().map_err(poisoned)?;
        if slot.is_some() {
            return Ok(true);
        }
        let path = self.dir.join("writer.lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::internal(format!("cannot open {}: {e}", path.display())))?;
        match file.try_lock() {
            Ok(()) => {
                *slot = Some(file);
                Ok(true)
            }
            Err(std::fs::TryLockError::WouldBlock) => Ok(false),
            Err(std::fs::TryLockError::Error(e)) => Err(Error::internal(format!(
                "cannot lock {}: {e}",
                path.display()
            ))),
        }
    }

    /// The saved index and its position, when it exists, is intact and was made for this
    /// embedder.
    fn read_snapshot(&self) -> Result<Option<(VectorIndex, i64)>> {
        let index = match VectorIndex::open(&self.dir) {
            Ok(Some(i)) => i,
            Ok(None) => return Ok(None),
            Err(e) => {
                tracing::warn!(error = %e, "the vector snapshot is unusable; rebuilding from the database");
                return Ok(None);
            }
        };
        let meta = index.meta();
        let (embedder, position) = meta.rsplit_once('\n').unwrap_or(("", ""));
        match position.parse::<i64>() {
            Ok(p) if embedder == self.embedder => Ok(Some((index, p))),
            _ => {
                tracing::info!(
                    snapshot = embedder,
                    embedder = %self.embedder,
                    "the vector snapshot was made for another embedder; rebuilding"
                );
                Ok(None)
            }
        }
    }

    fn save(&self) -> Result<bool> {
        if !self.take_lock()? {
            return Ok(false);
        }
        let position = self.follower.applied();
        let state = self.state.read().map_err(poisoned)?;
        // With no vector yet there is nothing worth saving: a start without a snapshot
        // rebuilds from the database, which is then cheap.
        if let Some(index) = &state.index {
            index
                .save_with_meta(&self.dir, &format!("{}\n{position}", self.embedder))
                .map_err(vec_err)?;
        }
        drop(state);
        *self.saved.lock().map_err(poisoned)? = (position, Instant::now());
        Ok(true)
    }

    fn search(&self, q: &VectorQuery) -> Result<Vec<(i64, f32)>> {
        let state = self.state.read().map_err(poisoned)?;
        let Some(index) = &state.index else {
            return Ok(Vec::new());
        };
        if q.limit == 0 || index.is_empty() {
            return Ok(Vec::new());
        }
        if q.vector.len() != index.dim() {
            return Err(Error::internal(format!(
                "the query vector has {} dimensions and the index {}; rebuild it with `zentoria reindex`",
                q.vector.len(),
                index.dim()
            )));
        }
        // Chunks without a file entry are stale (their file is gone): never admitted.
        let allow = |id: u64| {
            state
                .chunk_file
                .get(&id)
                .is_some_and(|f| admits(&q.filter, f))
        };
        let found = index
            .search(&q.vector, q.limit, Some(&allow))
            .map_err(vec_err)?;
        Ok(found.into_iter().map(|(id, s)| (id as i64, s)).collect())
    }
}

/// Filter data for the given files that are searchable (being indexed or ready).
async fn load_metas(db: &Db, file_ids: &[String]) -> Result<HashMap<String, Arc<FileMeta>>> {
    let files = repo::files_by_ids(db, file_ids).await?;
    let mut tags: HashMap<String, Vec<String>> = HashMap::new();
    for (id, t) in repo::tags_of(db, file_ids).await? {
        tags.entry(id).or_default().push(t);
    }
    Ok(files
        .into_iter()
        .filter(|f| matches!(f.status.as_str(), "indexing" | "ready"))
        .map(|f| {
            let meta = FileMeta {
                tags: tags.remove(&f.id).unwrap_or_default(),
                id: f.id.clone(),
                owner: f.owner_id,
                collection: f.collection_id,
                kind: f.kind,
            };
            (f.id, Arc::new(meta))
        })
        .collect())
}

/// The searchable files among `file_ids` with their vectors from `embedder`.
async fn load_vectors(db: &Db, embedder: &str, file_ids: &[String]) -> Result<Vec<FileVectors>> {
    let metas = load_metas(db, file_ids).await?;
    let searchable: Vec<String> = metas.keys().cloned().collect();
    let mut by_file: HashMap<String, Vec<(u64, Vec<f32>)>> = HashMap::new();
    for (chunk, file, bytes) in repo::vectors_of_files(db, embedder, &searchable).await? {
        let Some(v) = decode(&bytes) else {
            tracing::warn!(chunk, "a stored vector has a broken length; skipped");
            continue;
        };
        by_file.entry(file).or_default().push((chunk as u64, v));
    }
    Ok(metas
        .into_iter()
        .filter_map(|(id, meta)| {
            by_file
                .remove(&id)
                .map(|vectors| FileVectors { meta, vectors })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_round_trip_through_bytes() {
        let v = vec![0.0, -1.5, f32::MIN_POSITIVE, 3.25];
        assert_eq!(decode(&encode(&v)).unwrap(), v);
        assert!(decode(&[0, 1, 2]).is_none());
        assert_eq!(decode(&[]).unwrap(), Vec::<f32>::new());
    }

    #[test]
    fn filters_combine_as_and_and_values_as_or() {
        let f = FileMeta {
            id: "f1".into(),
            owner: "u1".into(),
            collection: Some("c1".into()),
            kind: "pdf".into(),
            tags: vec!["a".into(), "b".into()],
        };
        let q = |o: Option<&str>, c: Option<&str>, kinds: &[&str], tags: &[&str]| ChunkFilter {
            owner: o.map(Into::into),
            collection: c.map(Into::into),
            kinds: kinds.iter().map(|s| s.to_string()).collect(),
            tags: tags.iter().map(|s| s.to_string()).collect(),
            ..ChunkFilter::default()
        };
        assert!(admits(&q(None, None, &[], &[]), &f));
        assert!(admits(
            &q(Some("u1"), Some("c1"), &["pdf", "docx"], &["z", "b"]),
            &f
        ));
        assert!(!admits(&q(Some("u2"), None, &[], &[]), &f));
        assert!(!admits(&q(None, Some("c2"), &[], &[]), &f));
        assert!(!admits(&q(None, None, &["docx"], &[]), &f));
        assert!(!admits(&q(None, None, &[], &["z"]), &f));
        let by_id = ChunkFilter {
            file_ids: vec!["f2".into()],
            ..ChunkFilter::default()
        };
        assert!(!admits(&by_id, &f));
    }
}
