//! The blob port: file contents by SHA-256. The embedded default keeps them on local disk,
//! content-addressed (`blobs/ab/cdef…`), written by an atomic rename so a crash never leaves a
//! half-written blob under a real name. An S3 variant joins this enum when it arrives.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt};
use zentoria_core::{Error, Result};

pub enum Blobs {
    Local(LocalBlobs),
}

pub struct LocalBlobs {
    root: PathBuf,
    tmp: PathBuf,
}

impl Blobs {
    /// Local blobs under `data_dir/blobs`, with uploads staged in `data_dir/tmp` (same file
    /// system, so the final move is a rename). Leftover staging files from a crash are removed.
    pub fn local(data_dir: &Path) -> Result<Blobs> {
        let root = data_dir.join("blobs");
        let tmp = data_dir.join("tmp");
        for dir in [&root, &tmp] {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::internal(format!("cannot create {}: {e}", dir.display())))?;
        }
        if let Ok(entries) = std::fs::read_dir(&tmp) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with("upload-") {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        Ok(Blobs::Local(LocalBlobs { root, tmp }))
    }

    /// A fresh path to stage an upload in; the caller removes it unless it is stored.
    pub fn staging_path(&self) -> PathBuf {
        match self {
            Blobs::Local(l) => l.tmp.join(format!(
                "upload-{}",
                zentoria_core::crypto::random_base62(16)
            )),
        }
    }

    /// Moves a staged file into the store under its hash (keeping the stored copy if one is
    /// already there) and makes it durable.
    pub async fn put(&self, sha256: &str, staged: &Path) -> Result<()> {
        match self {
            Blobs::Local(l) => {
                let dest = l.path(sha256)?;
                if tokio::fs::try_exists(&dest).await.unwrap_or(false) {
                    let _ = tokio::fs::remove_file(staged).await;
                    return Ok(());
                }
                let parent = dest
                    .parent()
                    .ok_or_else(|| Error::bug("blob path has no parent"))?;
                tokio::fs::create_dir_all(parent).await.map_err(io)?;
                tokio::fs::rename(staged, &dest).await.map_err(io)?;
                // The rename is durable once the directory entry is.
                if let Ok(dir) = tokio::fs::File::open(parent).await {
                    let _ = dir.sync_all().await;
                }
                Ok(())
            }
        }
    }

    pub async fn exists(&self, sha256: &str) -> Result<bool> {
        match self {
            Blobs::Local(l) => Ok(tokio::fs::try_exists(l.path(sha256)?)
                .await
                .unwrap_or(false)),
        }
    }

    /// The whole blob, at most `limit` bytes (a larger one is an error).
    pub async fn read(&self, sha256: &str, limit: u64) -> Result<Vec<u8>> {
        match self {
            Blobs::Local(l) => {
                let f = tokio::fs::File::open(l.path(sha256)?)
                    .await
                    .map_err(|e| missing(sha256, e))?;
                let mut buf = Vec::new();
                f.take(limit + 1).read_to_end(&mut buf).await.map_err(io)?;
                if buf.len() as u64 > limit {
                    return Err(Error::TooLarge(format!(
                        "the stored file exceeds {limit} bytes"
                    )));
                }
                Ok(buf)
            }
        }
    }

    /// A local path to the blob, for tools that read files (the sandboxed extractor).
    pub fn local_path(&self, sha256: &str) -> Result<PathBuf> {
        match self {
            Blobs::Local(l) => l.path(sha256),
        }
    }

    /// Reads `len` bytes from `start` (the caller has checked the range against the size).
    pub async fn open_range(
        &self,
        sha256: &str,
        start: u64,
        len: u64,
    ) -> Result<Box<dyn AsyncRead + Send + Unpin>> {
        match self {
            Blobs::Local(l) => {
                let mut f = tokio::fs::File::open(l.path(sha256)?)
                    .await
                    .map_err(|e| missing(sha256, e))?;
                if start > 0 {
                    f.seek(SeekFrom::Start(start)).await.map_err(io)?;
                }
                Ok(Box::new(f.take(len)))
            }
        }
    }

    pub async fn delete(&self, sha256: &str) -> Result<()> {
        match self {
            Blobs::Local(l) => match tokio::fs::remove_file(l.path(sha256)?).await {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(io(e)),
            },
        }
    }
}

impl LocalBlobs {
    fn path(&self, sha256: &str) -> Result<PathBuf> {
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::bug(format!("not a SHA-256: {sha256:?}")));
        }
        Ok(self.root.join(&sha256[..2]).join(&sha256[2..]))
    }
}

fn io(e: std::io::Error) -> Error {
    Error::internal(e)
}

fn missing(sha256: &str, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        Error::bug(format!("blob {sha256} is missing from the store"))
    } else {
        Error::internal(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn put_read_range_delete() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::local(dir.path()).unwrap();
        let staged = blobs.staging_path();
        tokio::fs::write(&staged, b"hello blob").await.unwrap();
        let sha = hex::encode(zentoria_core::crypto::sha256(b"hello blob"));
        blobs.put(&sha, &staged).await.unwrap();
        assert!(!staged.exists(), "the staged file is moved, not copied");
        assert_eq!(blobs.read(&sha, 100).await.unwrap(), b"hello blob");
        assert!(blobs.read(&sha, 3).await.is_err());
        let mut r = blobs.open_range(&sha, 6, 4).await.unwrap();
        let mut out = String::new();
        r.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "blob");
        // A second put of the same content keeps the first and drops the staged copy.
        let again = blobs.staging_path();
        tokio::fs::write(&again, b"hello blob").await.unwrap();
        blobs.put(&sha, &again).await.unwrap();
        assert!(!again.exists());
        blobs.delete(&sha).await.unwrap();
        assert!(!blobs.exists(&sha).await.unwrap());
        blobs.delete(&sha).await.unwrap();
        assert!(blobs.local_path("../../etc/passwd").is_err());
    }
}
