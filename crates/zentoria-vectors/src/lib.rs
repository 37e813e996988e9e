//! # zentoria-vectors
//!
//! The embedded approximate-nearest-neighbour (ANN) index behind Zentoria's
//! semantic search: cosine similarity over L2-normalised `f32` embeddings
//! (typically 384-d, up to 4096-d), keyed by caller-chosen `u64` ids, with
//! upserts, deletions, filtered search, exact search over an id list, and
//! crash-safe persistence to a directory.
//!
//! ## Engine choice: USearch (`usearch` crate, C++ via `cxx`)
//!
//! Candidates that were evaluated:
//!
//! * **`usearch`** — HNSW in header-only C++ with runtime-dispatched SIMD
//!   kernels (NumKong: AVX2/AVX-512/NEON). It natively supports everything we
//!   need: *real* deletions (removed slots are tombstoned and reused by later
//!   inserts, so no periodic rebuild is required), a predicate that is
//!   evaluated **during** graph traversal (`filtered_search`), concurrent
//!   inserts from several threads on one index, and (de)serialisation to an
//!   in-memory buffer, which lets us wrap it in our own checksummed,
//!   atomically-replaced file. It builds here with g++ 12 (≈3–4 min cold
//!   release build, mostly the SIMD kernels; incremental builds are instant).
//! * **`hnsw_rs`** — pure Rust with a filter trait and dump/reload, but it has
//!   no deletion at all (tombstones + full rebuilds would be on us), its
//!   reload API ties the index's lifetime to the loader, and it pulls a larger
//!   dependency tree (rayon, mmap, serde, …).
//! * **`instant-distance`** — pure Rust and small, but immutable after
//!   building: no inserts after build, no deletes, no filtered search.
//! * **own HNSW** — only worth it if the crates failed; `usearch` did not.
//!
//! The cost of the C++ engine is that it is not memory-safe against
//! adversarial *input files*. This crate therefore never hands bytes to the
//! engine that it has not verified: every saved file carries a CRC-32 over
//! its full contents plus exact length checks, so truncation or bit rot is
//! reported as [`VectorError::Corrupt`] instead of reaching C++. (A file
//! deliberately crafted with a valid checksum is out of the threat model: the
//! index directory is private to the service.)
//!
//! ## Search behaviour
//!
//! * Vectors are re-normalised on insert and on query, and the engine uses
//!   the inner-product metric, so scores are cosine similarities in `[-1, 1]`
//!   (higher is better) even if a caller's vectors drift slightly from unit
//!   length. An all-zero vector is accepted and scores `0` against anything.
//! * [`VectorIndex::search`] with a filter estimates the filter's selectivity
//!   on 512 pseudo-randomly sampled ids. When it admits fewer than 2 % of the
//!   ids, when the index is small (< 2048), or when a simple cost model says
//!   a scan is cheaper (e.g. ≤ ~10 % admitted at 100k vectors), the search
//!   is an exact scan over the admitted ids; otherwise the HNSW graph is
//!   searched with the filter applied during the traversal. If the graph search ever yields fewer than `k` results while
//!   more could exist, the exact scan is used as a fallback, so the result
//!   always has `min(k, admitted ids)` entries.
//! * [`VectorIndex::search_among`] is an exact search over an explicit id
//!   list — use it when a filter names few documents.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod persist;

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::path::Path;
use std::sync::{Condvar, Mutex};

use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

/// Largest supported dimensionality.
pub const MAX_DIM: usize = 4096;

/// Id value reserved by the engine for freed slots; it cannot be stored.
pub const RESERVED_ID: u64 = u64::MAX;

/// Below this number of stored vectors a filtered search is always an exact scan.
const EXACT_SCAN_BELOW: usize = 2_048;
/// Filters admitting less than this fraction of the ids are served by an exact scan.
const SELECTIVE_FRACTION: f64 = 0.02;
/// Cost model for choosing between an exact scan and a filtered graph
/// traversal (µs, measured at 384-d on the 2-core target): the scan pays a
/// filter call per id plus a fetch + dot product per admitted id; a filtered
/// traversal costs about an unfiltered one (∝ `ef`) divided by the fraction
/// of ids admitted, because the beam must wade through rejected nodes.
const SCAN_US_PER_ID: f64 = 0.005;
const SCAN_US_PER_ADMITTED: f64 = 0.6;
const GRAPH_US_PER_EF: f64 = 8.0;
/// Number of ids probed to estimate a filter's selectivity.
const SELECTIVITY_SAMPLE: usize = 512;
/// Batches smaller than this are inserted on the calling thread.
const PARALLEL_BATCH_MIN: usize = 256;

/// Errors reported by [`VectorIndex`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VectorError {
    /// A vector (or the requested dimensionality) does not match the index.
    Dimension {
        /// Dimensionality the index was created with (or the supported limit).
        expected: usize,
        /// Length of the offending vector (or the requested dimensionality).
        got: usize,
    },
    /// A filesystem operation failed.
    Io(String),
    /// A saved index is truncated, fails its checksum, or is inconsistent.
    Corrupt(String),
    /// The engine rejected an operation or an input it cannot store
    /// (non-finite component, the reserved id `u64::MAX`, out of memory, …).
    Engine(String),
}

impl std::fmt::Display for VectorError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VectorError::Dimension { expected, got } => {
                write!(
                    f,
                    "vector dimension mismatch: expected {expected}, got {got}"
                )
            }
            VectorError::Io(m) => write!(f, "vector index I/O error: {m}"),
            VectorError::Corrupt(m) => write!(f, "vector index file is corrupt: {m}"),
            VectorError::Engine(m) => write!(f, "vector index engine error: {m}"),
        }
    }
}

impl std::error::Error for VectorError {}

impl From<std::io::Error> for VectorError {
    fn from(e: std::io::Error) -> Self {
        VectorError::Io(e.to_string())
    }
}

fn engine_err(context: &str, e: impl std::fmt::Display) -> VectorError {
    VectorError::Engine(format!("{context}: {e}"))
}

/// HNSW tuning knobs. The defaults reach recall@10 ≥ 0.95 on 100k random
/// 384-d unit vectors (a harder distribution than real embeddings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexParams {
    /// Graph degree `M` (edges per node on upper levels; `2·M` on the base level).
    pub connectivity: usize,
    /// Candidate-list size while inserting (`efConstruction`).
    pub expansion_add: usize,
    /// Candidate-list size while searching (`ef`); raised to `k` when smaller.
    pub expansion_search: usize,
}

impl Default for IndexParams {
    fn default() -> Self {
        IndexParams {
            connectivity: 16,
            expansion_add: 128,
            expansion_search: 100,
        }
    }
}

impl IndexParams {
    fn validate(&self) -> Result<(), VectorError> {
        let ok = |v: usize, lo: usize, hi: usize| (lo..=hi).contains(&v);
        if !ok(self.connectivity, 2, 256)
            || !ok(self.expansion_add, 1, 65_536)
            || !ok(self.expansion_search, 1, 65_536)
        {
            return Err(VectorError::Engine(format!(
                "invalid index parameters {self:?} (connectivity 2..=256, expansions 1..=65536)"
            )));
        }
        Ok(())
    }
}

/// Counting semaphore bounding concurrent engine calls to the number of
/// per-thread contexts reserved in the engine (an engine call beyond that
/// would fail instead of waiting).
struct Gate {
    free: Mutex<usize>,
    cv: Condvar,
}

struct GateGuard<'a>(&'a Gate);

impl Gate {
    fn new(n: usize) -> Self {
        Gate {
            free: Mutex::new(n),
            cv: Condvar::new(),
        }
    }

    fn acquire(&self) -> GateGuard<'_> {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        while *free == 0 {
            free = self.cv.wait(free).unwrap_or_else(|p| p.into_inner());
        }
        *free -= 1;
        GateGuard(self)
    }
}

impl Drop for GateGuard<'_> {
    fn drop(&mut self) {
        let mut free = self.0.free.lock().unwrap_or_else(|p| p.into_inner());
        *free += 1;
        self.0.cv.notify_one();
    }
}

fn engine_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    (cores * 2).max(8)
}

fn worker_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// An HNSW index of unit vectors keyed by `u64`, scored by cosine similarity.
///
/// `VectorIndex` is `Send + Sync`: searches take `&self` and may run
/// concurrently (e.g. behind an `RwLock`); mutations take `&mut self`.
pub struct VectorIndex {
    dim: usize,
    params: IndexParams,
    inner: Index,
    /// Live ids in arbitrary order (for selectivity sampling and exact scans).
    ids: Vec<u64>,
    /// id → position in `ids`.
    pos: HashMap<u64, usize>,
    /// Graph slots ever allocated by the engine (live + tombstoned).
    slots_used: usize,
    /// Tombstoned slots the engine will reuse for the next inserts.
    free_slots: usize,
    threads: usize,
    gate: Gate,
    meta: Mutex<String>,
}

impl std::fmt::Debug for VectorIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VectorIndex")
            .field("dim", &self.dim)
            .field("len", &self.ids.len())
            .field("params", &self.params)
            .field("meta", &self.meta())
            .finish_non_exhaustive()
    }
}

/// A caller's filter, shielded so that a panic inside it neither unwinds
/// through the C++ engine (which would abort) nor escapes as a panic: it
/// admits nothing from then on and the search reports an error.
struct SafeFilter<'a> {
    f: &'a dyn Fn(u64) -> bool,
    panicked: std::cell::Cell<bool>,
}

impl<'a> SafeFilter<'a> {
    fn new(f: &'a dyn Fn(u64) -> bool) -> Self {
        SafeFilter {
            f,
            panicked: std::cell::Cell::new(false),
        }
    }

    fn call(&self, id: u64) -> bool {
        if self.panicked.get() {
            return false;
        }
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (self.f)(id))).unwrap_or_else(
            |_| {
                self.panicked.set(true);
                false
            },
        )
    }

    fn panicked(&self) -> bool {
        self.panicked.get()
    }

    fn check(&self) -> Result<(), VectorError> {
        if self.panicked() {
            Err(VectorError::Engine("search filter panicked".into()))
        } else {
            Ok(())
        }
    }
}

#[derive(PartialEq)]
struct Scored(f32, u64);
impl Eq for Scored {}
impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scored {
    /// "Greater" = worse (lower score), so a max-heap keeps the worst on top.
    fn cmp(&self, other: &Self) -> Ordering {
        other.0.total_cmp(&self.0).then(self.1.cmp(&other.1))
    }
}

#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// Copies `v` (finite components) into `out`, scaled to unit length; zero
/// vectors stay zero.
fn normalize_into(v: &[f32], out: &mut Vec<f32>) {
    out.clear();
    out.extend_from_slice(v);
    let mut norm = dot(out, out).sqrt();
    if !norm.is_finite() {
        // Huge components overflow the squared norm: pre-scale by the largest one.
        let max = out.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        if max > 0.0 {
            out.iter_mut().for_each(|x| *x /= max);
        }
        norm = dot(out, out).sqrt();
    }
    if norm > 0.0 && norm.is_finite() && (norm - 1.0).abs() > 1e-6 {
        let inv = 1.0 / norm;
        out.iter_mut().for_each(|x| *x *= inv);
    }
}

impl VectorIndex {
    /// Creates an empty index for `dim`-dimensional vectors with default parameters.
    pub fn create(dim: usize) -> Result<Self, VectorError> {
        Self::create_with(dim, IndexParams::default())
    }

    /// Creates an empty index with explicit HNSW parameters.
    pub fn create_with(dim: usize, params: IndexParams) -> Result<Self, VectorError> {
        if dim == 0 || dim > MAX_DIM {
            return Err(VectorError::Dimension {
                expected: MAX_DIM,
                got: dim,
            });
        }
        params.validate()?;
        let inner =
            Index::new(&Self::options(dim, params)).map_err(|e| engine_err("creating index", e))?;
        let threads = engine_threads();
        inner
            .reserve_capacity_and_threads(64, threads)
            .map_err(|e| engine_err("reserving capacity", e))?;
        Ok(Self::assemble(dim, params, inner, threads))
    }

    fn options(dim: usize, params: IndexParams) -> IndexOptions {
        IndexOptions {
            dimensions: dim,
            metric: MetricKind::IP,
            quantization: ScalarKind::F32,
            connectivity: params.connectivity,
            expansion_add: params.expansion_add,
            expansion_search: params.expansion_search,
            multi: false,
        }
    }

    fn assemble(dim: usize, params: IndexParams, inner: Index, threads: usize) -> Self {
        VectorIndex {
            dim,
            params,
            inner,
            ids: Vec::new(),
            pos: HashMap::new(),
            slots_used: 0,
            free_slots: 0,
            threads,
            gate: Gate::new(threads),
            meta: Mutex::new(String::new()),
        }
    }

    /// Loads the index saved in `dir`; `Ok(None)` when nothing was saved there yet.
    pub fn open(dir: &Path) -> Result<Option<Self>, VectorError> {
        persist::open(dir)
    }

    /// Saves atomically to `dir` (created if missing), with the current
    /// metadata (see [`meta`](Self::meta)).
    ///
    /// The index is written to a temporary file in `dir`, fsynced, and renamed
    /// over the previous save, so a crash at any point leaves either the old
    /// or the new save readable. Takes `&self`, so searches can continue
    /// (e.g. under a read lock) while a save runs.
    pub fn save(&self, dir: &Path) -> Result<(), VectorError> {
        let meta = self.meta();
        persist::save(self, dir, &meta)
    }

    /// Like [`save`](Self::save), storing `meta` — an opaque caller string,
    /// e.g. "embedder id + last applied change sequence" — in the same atomic
    /// write, so the index and its position are always saved together. On
    /// success `meta` becomes this index's current metadata.
    pub fn save_with_meta(&self, dir: &Path, meta: &str) -> Result<(), VectorError> {
        persist::save(self, dir, meta)?;
        self.set_meta(meta);
        Ok(())
    }

    /// The metadata of the last save or load (or [`set_meta`](Self::set_meta));
    /// empty for a new index.
    pub fn meta(&self) -> String {
        self.meta.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the metadata kept in memory (written by the next [`save`](Self::save)).
    pub fn set_meta(&self, meta: &str) {
        *self.meta.lock().unwrap_or_else(|p| p.into_inner()) = meta.to_owned();
    }

    /// Dimensionality of the stored vectors.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of stored vectors.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// `true` when no vector is stored.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The HNSW parameters in effect.
    pub fn params(&self) -> IndexParams {
        self.params
    }

    /// Changes the search-time candidate-list size (`ef`): higher is slower
    /// and more accurate. Not persisted beyond the next save.
    pub fn set_expansion_search(&mut self, ef: usize) -> Result<(), VectorError> {
        let params = IndexParams {
            expansion_search: ef,
            ..self.params
        };
        params.validate()?;
        self.inner.change_expansion_search(ef);
        self.params = params;
        Ok(())
    }

    /// Approximate heap memory used by the engine, in bytes.
    pub fn memory_usage(&self) -> usize {
        self.inner.memory_usage()
    }

    /// `true` when a vector with this id is stored.
    pub fn contains(&self, id: u64) -> bool {
        self.pos.contains_key(&id)
    }

    /// All stored ids, in no particular order.
    pub fn ids(&self) -> &[u64] {
        &self.ids
    }

    fn check_vector(&self, v: &[f32]) -> Result<(), VectorError> {
        if v.len() != self.dim {
            return Err(VectorError::Dimension {
                expected: self.dim,
                got: v.len(),
            });
        }
        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
            return Err(VectorError::Engine(format!(
                "vector component {i} is not finite"
            )));
        }
        Ok(())
    }

    fn check_item(&self, id: u64, v: &[f32]) -> Result<(), VectorError> {
        if id == RESERVED_ID {
            return Err(VectorError::Engine(
                "id u64::MAX is reserved by the engine".into(),
            ));
        }
        self.check_vector(v)
    }

    /// Makes room for `n` more inserts (the engine requires capacity up front).
    fn ensure_capacity(&mut self, n: usize) -> Result<(), VectorError> {
        let needed = self.slots_used + n.saturating_sub(self.free_slots);
        let cap = self.inner.capacity();
        if needed <= cap {
            return Ok(());
        }
        let target = needed.max(cap.saturating_mul(3) / 2).max(64);
        self.inner
            .reserve_capacity_and_threads(target, self.threads)
            .map_err(|e| engine_err("reserving capacity", e))?;
        if self.inner.capacity() < needed {
            return Err(VectorError::Engine(format!(
                "could not reserve capacity for {needed} vectors (out of memory?)"
            )));
        }
        Ok(())
    }

    fn note_slot_used(&mut self) {
        if self.free_slots > 0 {
            self.free_slots -= 1;
        } else {
            self.slots_used += 1;
        }
    }

    fn track_insert(&mut self, id: u64) {
        if let std::collections::hash_map::Entry::Vacant(e) = self.pos.entry(id) {
            e.insert(self.ids.len());
            self.ids.push(id);
        }
    }

    fn track_remove(&mut self, id: u64) {
        if let Some(p) = self.pos.remove(&id) {
            self.ids.swap_remove(p);
            if let Some(&moved) = self.ids.get(p) {
                self.pos.insert(moved, p);
            }
        }
    }

    /// Removes `id` from the engine (not from the id bookkeeping).
    fn engine_remove(&mut self, id: u64) -> Result<(), VectorError> {
        let n = self
            .inner
            .remove(id)
            .map_err(|e| engine_err("removing vector", e))?;
        self.free_slots += n;
        Ok(())
    }

    /// Inserts `vector` under `id`, replacing any previous vector of that id.
    pub fn upsert(&mut self, id: u64, vector: &[f32]) -> Result<(), VectorError> {
        self.check_item(id, vector)?;
        let mut unit = Vec::with_capacity(self.dim);
        normalize_into(vector, &mut unit);
        if self.contains(id) {
            self.engine_remove(id)?;
            self.track_remove(id);
        }
        self.ensure_capacity(1)?;
        self.inner
            .add(id, &unit)
            .map_err(|e| engine_err("adding vector", e))?;
        self.note_slot_used();
        self.track_insert(id);
        Ok(())
    }

    /// Upserts many vectors, inserting on all cores. All items are validated
    /// before anything changes; if an id occurs several times the last wins.
    pub fn upsert_batch(&mut self, items: &[(u64, Vec<f32>)]) -> Result<(), VectorError> {
        for (id, v) in items {
            self.check_item(*id, v)?;
        }
        // Deduplicate, keeping the last occurrence of each id.
        let mut seen = HashSet::with_capacity(items.len());
        let mut todo: Vec<&(u64, Vec<f32>)> = Vec::with_capacity(items.len());
        for item in items.iter().rev() {
            if seen.insert(item.0) {
                todo.push(item);
            }
        }
        todo.reverse();
        for (id, _) in &todo {
            if self.contains(*id) {
                self.engine_remove(*id)?;
                self.track_remove(*id);
            }
        }
        self.ensure_capacity(todo.len())?;

        let workers = if todo.len() < PARALLEL_BATCH_MIN {
            1
        } else {
            worker_threads().min(self.threads).max(1)
        };
        let inner = &self.inner;
        let add_chunk = |chunk: &[&(u64, Vec<f32>)]| -> (Vec<u64>, Option<VectorError>) {
            let mut unit = Vec::with_capacity(chunk.first().map_or(0, |c| c.1.len()));
            let mut added = Vec::with_capacity(chunk.len());
            for (id, v) in chunk {
                normalize_into(v, &mut unit);
                if let Err(e) = inner.add(*id, &unit) {
                    return (added, Some(engine_err("adding vector", e)));
                }
                added.push(*id);
            }
            (added, None)
        };
        let outcomes: Vec<(Vec<u64>, Option<VectorError>)> = if workers == 1 {
            vec![add_chunk(&todo)]
        } else {
            let chunk_len = todo.len().div_ceil(workers);
            std::thread::scope(|s| {
                let handles: Vec<_> = todo
                    .chunks(chunk_len)
                    .map(|c| s.spawn(move || add_chunk(c)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            (
                                Vec::new(),
                                Some(VectorError::Engine("insert worker panicked".into())),
                            )
                        })
                    })
                    .collect()
            })
        };
        let mut first_err = None;
        for (added, err) in outcomes {
            for id in added {
                self.note_slot_used();
                self.track_insert(id);
            }
            if first_err.is_none() {
                first_err = err;
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Removes `id`; `Ok(false)` when it was not stored.
    pub fn remove(&mut self, id: u64) -> Result<bool, VectorError> {
        if !self.contains(id) {
            return Ok(false);
        }
        self.engine_remove(id)?;
        self.track_remove(id);
        Ok(true)
    }

    /// Returns the stored (unit-normalised) vector of `id`.
    pub fn get(&self, id: u64) -> Option<Vec<f32>> {
        if !self.contains(id) {
            return None;
        }
        let mut buf = vec![0.0f32; self.dim];
        match self.inner.get(id, &mut buf) {
            Ok(1) => Some(buf),
            _ => None,
        }
    }

    /// The `k` nearest stored vectors to `query`, best first, as
    /// `(id, cosine similarity)`.
    ///
    /// `allow` filters candidates during the search (not after), so a
    /// selective filter still returns `k` results when `k` admitted ids
    /// exist. Very selective filters are answered by an exact scan (see the
    /// crate docs). The filter must not panic.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        allow: Option<&dyn Fn(u64) -> bool>,
    ) -> Result<Vec<(u64, f32)>, VectorError> {
        self.check_vector(query)?;
        if k == 0 || self.ids.is_empty() {
            return Ok(Vec::new());
        }
        let k = k.min(self.ids.len());
        let mut q = Vec::with_capacity(self.dim);
        normalize_into(query, &mut q);

        let Some(allow) = allow else {
            let found = self.graph_search(&q, k, None)?;
            if found.len() >= k {
                return Ok(found);
            }
            return Ok(self.exact_scan(&q, k, self.ids.iter().copied()));
        };

        let filter = SafeFilter::new(allow);
        let n = self.ids.len();
        let admitted = self.estimate_selectivity(&filter);
        let scan_cost = n as f64 * (SCAN_US_PER_ID + admitted * SCAN_US_PER_ADMITTED);
        let graph_cost = GRAPH_US_PER_EF * self.params.expansion_search.max(k) as f64 / admitted;
        let result =
            if n < EXACT_SCAN_BELOW || admitted < SELECTIVE_FRACTION || scan_cost <= graph_cost {
                self.exact_scan(
                    &q,
                    k,
                    self.ids.iter().copied().filter(|&id| filter.call(id)),
                )
            } else {
                let found = self.graph_search(&q, k, Some(&filter))?;
                if found.len() >= k || filter.panicked() {
                    found
                } else {
                    // The traversal could not reach k admitted vectors: make sure with an exact scan.
                    self.exact_scan(
                        &q,
                        k,
                        self.ids.iter().copied().filter(|&id| filter.call(id)),
                    )
                }
            };
        filter.check()?;
        Ok(result)
    }

    /// Exact search restricted to `ids` (unknown and duplicate ids are
    /// ignored): the right tool when a filter names few documents. Cost is
    /// proportional to `ids.len()`.
    pub fn search_among(
        &self,
        query: &[f32],
        k: usize,
        ids: &[u64],
    ) -> Result<Vec<(u64, f32)>, VectorError> {
        self.check_vector(query)?;
        if k == 0 || ids.is_empty() || self.ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = Vec::with_capacity(self.dim);
        normalize_into(query, &mut q);
        let mut seen = HashSet::with_capacity(ids.len().min(self.ids.len()));
        let candidates = ids
            .iter()
            .copied()
            .filter(|id| self.pos.contains_key(id) && seen.insert(*id));
        Ok(self.exact_scan(&q, k, candidates))
    }

    /// Exact (brute-force) search over all stored vectors, optionally filtered.
    /// Mainly for measuring recall.
    pub fn search_exact(
        &self,
        query: &[f32],
        k: usize,
        allow: Option<&dyn Fn(u64) -> bool>,
    ) -> Result<Vec<(u64, f32)>, VectorError> {
        self.check_vector(query)?;
        if k == 0 || self.ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = Vec::with_capacity(self.dim);
        normalize_into(query, &mut q);
        let all = self.ids.iter().copied();
        match allow {
            Some(f) => {
                let filter = SafeFilter::new(f);
                let res = self.exact_scan(&q, k, all.filter(|&id| filter.call(id)));
                filter.check()?;
                Ok(res)
            }
            None => Ok(self.exact_scan(&q, k, all)),
        }
    }

    /// Fraction of ids the filter admits, estimated on pseudo-randomly chosen
    /// positions (a fixed stride would alias with id patterns like `id % m`).
    fn estimate_selectivity(&self, filter: &SafeFilter<'_>) -> f64 {
        let n = self.ids.len();
        let samples = SELECTIVITY_SAMPLE.min(n);
        if samples == 0 {
            return 0.0;
        }
        let mut state = 0x5EED_u64 ^ n as u64;
        let hits = (0..samples)
            .filter_map(|_| {
                state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = state;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                z ^= z >> 31;
                self.ids.get((z % n as u64) as usize)
            })
            .filter(|&&id| filter.call(id))
            .count();
        hits as f64 / samples as f64
    }

    fn graph_search(
        &self,
        q: &[f32],
        k: usize,
        filter: Option<&SafeFilter<'_>>,
    ) -> Result<Vec<(u64, f32)>, VectorError> {
        let _slot = self.gate.acquire();
        let matches = match filter {
            None => self.inner.search(q, k),
            Some(f) => self.inner.filtered_search(q, k, |id| f.call(id)),
        }
        .map_err(|e| engine_err("searching", e))?;
        Ok(matches
            .keys
            .iter()
            .zip(&matches.distances)
            .map(|(&id, &d)| (id, 1.0 - d))
            .collect())
    }

    fn exact_scan(&self, q: &[f32], k: usize, ids: impl Iterator<Item = u64>) -> Vec<(u64, f32)> {
        let mut heap: BinaryHeap<Scored> = BinaryHeap::with_capacity(k + 1);
        let mut buf = vec![0.0f32; self.dim];
        for id in ids {
            if !matches!(self.inner.get(id, &mut buf), Ok(1)) {
                continue;
            }
            let s = dot(q, &buf);
            if heap.len() < k {
                heap.push(Scored(s, id));
            } else if heap.peek().is_some_and(|w| s > w.0) {
                heap.pop();
                heap.push(Scored(s, id));
            }
        }
        heap.into_sorted_vec()
            .into_iter()
            .map(|Scored(s, id)| (id, s))
            .collect()
    }
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn dot_matches_naive() {
        let a: Vec<f32> = (0..37).map(|i| i as f32 * 0.1).collect();
        let b: Vec<f32> = (0..37).map(|i| 1.0 - i as f32 * 0.05).collect();
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - naive).abs() < 1e-3);
    }

    #[test]
    fn scored_heap_keeps_best() {
        let mut h = BinaryHeap::new();
        for (s, id) in [(0.1, 1), (0.9, 2), (0.5, 3)] {
            h.push(Scored(s, id));
        }
        assert_eq!(h.peek().map(|x| x.1), Some(1)); // worst on top
        let v: Vec<u64> = h.into_sorted_vec().into_iter().map(|x| x.1).collect();
        assert_eq!(v, vec![2, 3, 1]);
    }

    #[test]
    fn index_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<VectorIndex>();
    }

    #[test]
    fn normalize_handles_extremes() {
        let mut out = Vec::new();
        normalize_into(&[3.0e37, 4.0e37], &mut out);
        assert!((out[0] - 0.6).abs() < 1e-6 && (out[1] - 0.8).abs() < 1e-6);
        normalize_into(&[0.0, 0.0], &mut out);
        assert_eq!(out, vec![0.0, 0.0]);
        normalize_into(&[2.0, 0.0], &mut out);
        assert_eq!(out, vec![1.0, 0.0]);
    }

    #[test]
    fn params_validation() {
        assert!(
            VectorIndex::create_with(
                8,
                IndexParams {
                    connectivity: 0,
                    ..Default::default()
                }
            )
            .is_err()
        );
        assert!(VectorIndex::create(0).is_err());
        assert!(VectorIndex::create(MAX_DIM + 1).is_err());
    }
}
