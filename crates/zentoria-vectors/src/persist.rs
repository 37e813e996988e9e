//! On-disk format and atomic save / verified load.
//!
//! A save is one file, `<dir>/vectors.zvi`, replaced atomically:
//! it is written to `<dir>/vectors.zvi.tmp-<pid>-<n>`, fsynced, renamed over
//! the previous file, and the directory is fsynced. A crash at any point
//! leaves the previous save (or nothing, on the first save) readable.
//!
//! Layout (little-endian):
//!
//! ```text
//! 0   magic  b"ZVECIDX\0"
//! 8   u32    format version (1)
//! 12  u32    dimensions
//! 16  u32    connectivity
//! 20  u32    expansion_add
//! 24  u32    expansion_search
//! 28  u32    reserved (0)
//! 32  u64    id count
//! 40  u64    meta length in bytes (UTF-8)
//! 48  u64    engine payload length in bytes
//! 56  ...    meta bytes, ids (u64 each), engine payload (USearch buffer)
//! end u32    CRC-32 of every preceding byte
//! ```
//!
//! Nothing reaches the C++ engine before the length and checksum checks pass.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use usearch::Index;

use crate::{
    IndexParams, MAX_DIM, RESERVED_ID, VectorError, VectorIndex, engine_err, engine_threads,
};

/// File name of a save inside its directory.
pub const FILE_NAME: &str = "vectors.zvi";
const TMP_PREFIX: &str = "vectors.zvi.tmp-";
const MAGIC: &[u8; 8] = b"ZVECIDX\0";
const VERSION: u32 = 1;
const HEADER_LEN: usize = 56;
const TRAILER_LEN: usize = 4;

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

fn io_err(context: &str, path: &Path, e: std::io::Error) -> VectorError {
    VectorError::Io(format!("{context} {}: {e}", path.display()))
}

fn corrupt(msg: impl Into<String>) -> VectorError {
    VectorError::Corrupt(msg.into())
}

fn u32_field(v: usize, what: &str) -> Result<u32, VectorError> {
    u32::try_from(v).map_err(|_| VectorError::Engine(format!("{what} {v} too large to save")))
}

/// Writer that checksums everything passing through it.
struct CrcWriter<W: Write> {
    inner: W,
    crc: crc32fast::Hasher,
}

impl<W: Write> CrcWriter<W> {
    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.crc.update(bytes);
        self.inner.write_all(bytes)
    }
}

pub(crate) fn save(index: &VectorIndex, dir: &Path, meta: &str) -> Result<(), VectorError> {
    fs::create_dir_all(dir).map_err(|e| io_err("creating directory", dir, e))?;
    remove_stale_temps(dir);

    let payload_len = index.inner.serialized_length();
    let mut payload = vec![0u8; payload_len];
    index
        .inner
        .save_to_buffer(&mut payload)
        .map_err(|e| engine_err("serialising index", e))?;

    let mut header = Vec::with_capacity(HEADER_LEN);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&VERSION.to_le_bytes());
    header.extend_from_slice(&u32_field(index.dim, "dimension")?.to_le_bytes());
    let p = index.params;
    header.extend_from_slice(&u32_field(p.connectivity, "connectivity")?.to_le_bytes());
    header.extend_from_slice(&u32_field(p.expansion_add, "expansion_add")?.to_le_bytes());
    header.extend_from_slice(&u32_field(p.expansion_search, "expansion_search")?.to_le_bytes());
    header.extend_from_slice(&0u32.to_le_bytes());
    header.extend_from_slice(&(index.ids.len() as u64).to_le_bytes());
    header.extend_from_slice(&(meta.len() as u64).to_le_bytes());
    header.extend_from_slice(&(payload_len as u64).to_le_bytes());
    debug_assert_eq!(header.len(), HEADER_LEN);

    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!("{TMP_PREFIX}{}-{n}", std::process::id()));
    let result = write_file(&tmp, &header, meta, &index.ids, &payload)
        .and_then(|()| {
            let dst = dir.join(FILE_NAME);
            fs::rename(&tmp, &dst).map_err(|e| io_err("renaming into", &dst, e))
        })
        .and_then(|()| sync_dir(dir));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn write_file(
    path: &Path,
    header: &[u8],
    meta: &str,
    ids: &[u64],
    payload: &[u8],
) -> Result<(), VectorError> {
    let file = File::create(path).map_err(|e| io_err("creating", path, e))?;
    let mut w = CrcWriter {
        inner: BufWriter::with_capacity(1 << 20, file),
        crc: crc32fast::Hasher::new(),
    };
    let werr = |e| io_err("writing", path, e);
    w.put(header).map_err(werr)?;
    w.put(meta.as_bytes()).map_err(werr)?;
    let mut idbuf = Vec::with_capacity(ids.len() * 8);
    for id in ids {
        idbuf.extend_from_slice(&id.to_le_bytes());
    }
    w.put(&idbuf).map_err(werr)?;
    w.put(payload).map_err(werr)?;
    let crc = w.crc.finalize();
    w.inner.write_all(&crc.to_le_bytes()).map_err(werr)?;
    let file = w
        .inner
        .into_inner()
        .map_err(|e| io_err("flushing", path, e.into_error()))?;
    file.sync_all().map_err(|e| io_err("syncing", path, e))
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> Result<(), VectorError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err("syncing directory", dir, e))
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> Result<(), VectorError> {
    Ok(())
}

/// Deletes temp files left behind by a crashed save (best effort).
fn remove_stale_temps(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(TMP_PREFIX))
        {
            let _ = fs::remove_file(entry.path());
        }
    }
}

fn path_of(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], VectorError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| corrupt("file is truncated"))?;
        let s = self
            .buf
            .get(self.at..end)
            .ok_or_else(|| corrupt("file is truncated"))?;
        self.at = end;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32, VectorError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes(
            b.try_into().map_err(|_| corrupt("bad u32"))?,
        ))
    }
    fn u64(&mut self) -> Result<u64, VectorError> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(
            b.try_into().map_err(|_| corrupt("bad u64"))?,
        ))
    }
    fn usize(&mut self, what: &str) -> Result<usize, VectorError> {
        usize::try_from(self.u64()?).map_err(|_| corrupt(format!("{what} out of range")))
    }
}

pub(crate) fn open(dir: &Path) -> Result<Option<VectorIndex>, VectorError> {
    let path = path_of(dir);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("reading", &path, e)),
    };
    decode(&bytes).map(Some)
}

fn decode(bytes: &[u8]) -> Result<VectorIndex, VectorError> {
    if bytes.len() < HEADER_LEN + TRAILER_LEN {
        return Err(corrupt(format!("file too short ({} bytes)", bytes.len())));
    }
    let mut r = Reader { buf: bytes, at: 0 };
    if r.take(8)? != MAGIC {
        return Err(corrupt("bad magic: not a zentoria-vectors file"));
    }
    let version = r.u32()?;
    if version != VERSION {
        return Err(corrupt(format!("unsupported format version {version}")));
    }
    let dim = r.u32()? as usize;
    let params = IndexParams {
        connectivity: r.u32()? as usize,
        expansion_add: r.u32()? as usize,
        expansion_search: r.u32()? as usize,
    };
    let _reserved = r.u32()?;
    let count = r.usize("id count")?;
    let meta_len = r.usize("meta length")?;
    let payload_len = r.usize("payload length")?;

    let expected = count
        .checked_mul(8)
        .and_then(|x| x.checked_add(meta_len))
        .and_then(|x| x.checked_add(payload_len))
        .and_then(|x| x.checked_add(HEADER_LEN + TRAILER_LEN))
        .ok_or_else(|| corrupt("section lengths overflow"))?;
    if expected != bytes.len() {
        return Err(corrupt(format!(
            "length mismatch: header describes {expected} bytes, file has {} (truncated?)",
            bytes.len()
        )));
    }
    let body_len = bytes.len() - TRAILER_LEN;
    let (body, trailer) = bytes.split_at(body_len);
    let stored_crc = u32::from_le_bytes(trailer.try_into().map_err(|_| corrupt("bad trailer"))?);
    if crc32fast::hash(body) != stored_crc {
        return Err(corrupt("checksum mismatch"));
    }

    // Checksum verified; still validate the contents defensively.
    if dim == 0 || dim > MAX_DIM {
        return Err(corrupt(format!("invalid dimension {dim}")));
    }
    params
        .validate()
        .map_err(|_| corrupt(format!("invalid parameters {params:?}")))?;
    let meta = std::str::from_utf8(r.take(meta_len)?)
        .map_err(|_| corrupt("metadata is not UTF-8"))?
        .to_owned();
    let id_bytes = r.take(count * 8)?;
    let payload = r.take(payload_len)?;

    let head = Index::metadata_from_buffer(payload)
        .map_err(|e| corrupt(format!("engine header unreadable: {e}")))?;
    if head.dimensions != dim as u64
        || head.metric != usearch::MetricKind::IP
        || head.quantization != usearch::ScalarKind::F32
        || head.multi
    {
        return Err(corrupt(format!(
            "engine header ({} dims, {:?}, {:?}, multi={}) differs from the file header ({dim} dims, IP, F32)",
            head.dimensions, head.metric, head.quantization, head.multi
        )));
    }
    if head.count_present != count as u64 {
        return Err(corrupt(format!(
            "engine holds {} vectors, id list has {count}",
            head.count_present
        )));
    }
    let deleted =
        usize::try_from(head.count_deleted).map_err(|_| corrupt("deleted count out of range"))?;

    let inner = Index::new(&VectorIndex::options(dim, params))
        .map_err(|e| engine_err("creating index", e))?;
    inner
        .load_from_buffer(payload)
        .map_err(|e| corrupt(format!("engine rejected payload: {e}")))?;
    if inner.dimensions() != dim || inner.size() != count {
        return Err(corrupt("engine contents differ from the file header"));
    }
    inner.change_expansion_add(params.expansion_add);
    inner.change_expansion_search(params.expansion_search);
    let threads = engine_threads();
    let slots_used = count.saturating_add(deleted);
    inner
        .reserve_capacity_and_threads(slots_used.max(64), threads)
        .map_err(|e| engine_err("reserving capacity", e))?;

    let mut index = VectorIndex::assemble(dim, params, inner, threads);
    index.slots_used = slots_used;
    index.free_slots = slots_used - count;
    index.ids.reserve(count);
    index.pos.reserve(count);
    for chunk in id_bytes.chunks_exact(8) {
        let id = u64::from_le_bytes(chunk.try_into().map_err(|_| corrupt("bad id"))?);
        if id == RESERVED_ID || !index.inner.contains(id) {
            return Err(corrupt(format!("id {id} listed but not in the engine")));
        }
        if index.pos.insert(id, index.ids.len()).is_some() {
            return Err(corrupt(format!("duplicate id {id}")));
        }
        index.ids.push(id);
    }
    index.meta = std::sync::Mutex::new(meta);
    Ok(index)
}
