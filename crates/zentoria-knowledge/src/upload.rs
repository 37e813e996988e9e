//! One upload in flight: bytes are streamed to a staging file while they are hashed, their
//! type is decided from the first bytes (and must agree with the name and declared type),
//! text is checked to be UTF-8 as it passes, and the size limit is enforced as it grows. Only
//! `finish` makes the file exist; dropping an unfinished upload removes its staging file.

use std::path::PathBuf;

use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use zentoria_core::time::now_ms;
use zentoria_core::{Error, Result};
use zentoria_extract::{FileType, Utf8Check};
use zentoria_jobs::EnqueueOptions;
use zentoria_platform::{ClientInfo, Principal};
use zentoria_store::repo::knowledge as repo;

use crate::{Ingest, Knowledge, Uploaded, normalize_tags};

/// Bytes looked at to decide what a file is.
const SNIFF_BYTES: usize = 8192;

pub struct Upload {
    k: Knowledge,
    principal: Principal,
    name: String,
    declared: Option<String>,
    staged: PathBuf,
    file: Option<tokio::fs::File>,
    hasher: Sha256,
    size: u64,
    head: Vec<u8>,
    file_type: Option<FileType>,
    utf8: Option<Utf8Check>,
    done: bool,
}

/// Where the upload goes and how it is labelled.
#[derive(Debug, Default, Clone)]
pub struct UploadMeta {
    /// A collection id or name (created when it does not exist).
    pub collection: Option<String>,
    pub tags: Vec<String>,
}

impl Upload {
    pub(crate) fn new(
        k: Knowledge,
        p: &Principal,
        filename: &str,
        declared: Option<&str>,
    ) -> Result<Upload> {
        let name = zentoria_extract::sanitize_filename(filename)
            .map_err(|r| Error::invalid(format!("unusable file name: {}", r.reason)))?;
        let staged = k.inner.blobs.staging_path();
        Ok(Upload {
            k,
            principal: p.clone(),
            name,
            declared: declared.map(str::to_owned),
            staged,
            file: None,
            hasher: Sha256::new(),
            size: 0,
            head: Vec::new(),
            file_type: None,
            utf8: None,
            done: false,
        })
    }

    /// The sanitised name the file will be stored under.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Takes the next piece of the body.
    pub async fn push(&mut self, bytes: &[u8]) -> Result<()> {
        let limit = self.k.inner.settings.max_upload_bytes;
        self.size += bytes.len() as u64;
        if self.size > limit {
            return Err(Error::TooLarge(format!(
                "the file is larger than the upload limit of {} (knowledge.max_upload_bytes)",
                human_bytes(limit)
            )));
        }
        self.hasher.update(bytes);
        if self.file_type.is_none() {
            let take = (SNIFF_BYTES - self.head.len()).min(bytes.len());
            self.head.extend_from_slice(&bytes[..take]);
            if self.head.len() >= SNIFF_BYTES {
                self.decide()?;
                // The head was written below as part of earlier pieces; check what follows it.
                self.check_text(&bytes[take..])?;
            }
        } else {
            self.check_text(bytes)?;
        }
        if self.file.is_none() {
            let f = tokio::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&self.staged)
                .await
                .map_err(Error::internal)?;
            self.file = Some(f);
        }
        if let Some(f) = self.file.as_mut() {
            f.write_all(bytes).await.map_err(Error::internal)?;
        }
        Ok(())
    }

    fn decide(&mut self) -> Result<()> {
        let ft = zentoria_extract::detect(&self.head, &self.name, self.declared.as_deref())
            .map_err(|r| Error::Unsupported(r.reason))?;
        if ft.kind.is_text() {
            let mut check = Utf8Check::new();
            check
                .push(&self.head)
                .map_err(|e| not_text(&self.name, e))?;
            self.utf8 = Some(check);
        }
        self.file_type = Some(ft);
        Ok(())
    }

    fn check_text(&mut self, bytes: &[u8]) -> Result<()> {
        if let Some(check) = self.utf8.as_mut() {
            check.push(bytes).map_err(|e| not_text(&self.name, e))?;
        }
        Ok(())
    }

    /// Stores the file (or finds the identical one the owner already has) and queues its
    /// ingestion.
    pub async fn finish(mut self, meta: UploadMeta, client: &ClientInfo) -> Result<Uploaded> {
        if self.size == 0 {
            return Err(Error::invalid("the file is empty"));
        }
        if self.file_type.is_none() {
            self.decide()?;
        }
        if let Some(check) = self.utf8.take() {
            check.finish().map_err(|e| not_text(&self.name, e))?;
        }
        let ft = self
            .file_type
            .take()
            .ok_or_else(|| Error::bug("file type undecided"))?;
        if let Some(mut f) = self.file.take() {
            f.flush().await.map_err(Error::internal)?;
            f.sync_all().await.map_err(Error::internal)?;
        }
        let tags = normalize_tags(&meta.tags)?;
        let k = self.k.clone();
        let p = self.principal.clone();
        let collection_id = match meta.collection.as_deref().map(str::trim) {
            Some(c) if !c.is_empty() => Some(k.collection_for_upload(&p, c).await?.id),
            _ => None,
        };
        let sha256 = hex::encode(std::mem::take(&mut self.hasher).finalize());
        let now = now_ms();
        let row = repo::FileRow {
            id: zentoria_core::id::new_id(),
            owner_id: p.user_id.clone(),
            collection_id,
            name: self.name.clone(),
            kind: ft.kind.as_str().to_owned(),
            mime: ft.mime.to_owned(),
            language: ft.language.map(str::to_owned),
            size: self.size as i64,
            sha256: sha256.clone(),
            status: "queued".into(),
            error: None,
            chunk_count: 0,
            pages: None,
            created_at: now,
            updated_at: now,
        };
        let (row, created, job_id) = {
            let _guard = k.inner.blob_lock.lock().await;
            let mut tx = k.inner.db.begin().await?;
            let (row, created) = repo::insert_file(&mut tx, &row).await?;
            let mut job_id = None;
            if created {
                repo::set_tags(&mut tx, &row.id, &tags).await?;
                let job = k
                    .inner
                    .queue
                    .enqueue_in(
                        &mut tx,
                        &Ingest {
                            file_id: row.id.clone(),
                        },
                        EnqueueOptions {
                            owner_id: Some(p.user_id.clone()),
                            run_at: None,
                        },
                    )
                    .await?;
                job_id = Some(job.id);
            }
            // The blob is in place before the row that names it commits.
            k.inner.blobs.put(&sha256, &self.staged).await?;
            k.inner.queue.commit(tx).await?;
            (row, created, job_id)
        };
        self.done = true;
        if created {
            k.audit(
                &p,
                client,
                "file.upload",
                &row.id,
                serde_json::json!({"name": row.name, "size": row.size, "sha256": row.sha256, "kind": row.kind}),
            )
            .await;
            k.publish(
                "file.uploaded",
                Some(&row.owner_id),
                serde_json::json!({"id": row.id, "name": row.name, "size": row.size}),
            )
            .await;
        }
        let file = k.with_tags(vec![row]).await?.remove(0);
        Ok(Uploaded {
            file,
            created,
            job_id,
        })
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.staged);
        }
    }
}

fn not_text(name: &str, e: zentoria_extract::InvalidText) -> Error {
    Error::Unsupported(format!(
        "{name} is declared as text but is not valid UTF-8 text: {e}"
    ))
}

/// `104857600` → `100 MiB`.
pub(crate) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["bytes", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 && (v / 1024.0).fract() == 0.0 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} bytes")
    } else {
        format!("{v} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn human_bytes_names_round_units() {
        assert_eq!(super::human_bytes(104857600), "100 MiB");
        assert_eq!(super::human_bytes(1000), "1000 bytes");
        assert_eq!(super::human_bytes(2048), "2 KiB");
    }
}
