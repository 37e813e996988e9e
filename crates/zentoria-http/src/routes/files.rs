//! Files, collections and search: multipart uploads streamed into the knowledge service,
//! downloads with HTTP ranges, and search with citations.

use axum::Json;
use axum::body::Body;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::Serialize;
use tokio::io::AsyncReadExt;
use zentoria_core::Error;
use zentoria_knowledge::{
    CollectionView, FilePage, FilePatch, FileQuery, FileView, NewCollection, SearchRequest,
    SearchResponse, UploadMeta, Uploaded,
};

use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Authed, Client, scope};

/// The multipart form of an upload.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct UploadForm {
    /// The file's content, with its filename.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// A collection id or name (created when it does not exist).
    collection: Option<String>,
    /// Tags: comma-separated, or a JSON array of strings.
    tags: Option<String>,
}

/// Uploads one file (multipart field `file`, optional `collection` and `tags`). The content
/// must be what its name and type say; identical content already uploaded by the same user
/// returns the existing file (200) instead of a new one (201). Ingestion runs as a job.
#[utoipa::path(post, path = "/api/v1/files", tag = "files",
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    security(("api_key" = []), ("bearer" = [])),
    responses((status = 201, body = Uploaded), (status = 200, body = Uploaded, description = "The same content was already stored"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub async fn upload(
    State(state): State<AppState>,
    auth: Authed<scope::FilesWrite>,
    Client(client): Client,
    multipart: Multipart,
) -> ApiResult<(StatusCode, Json<Uploaded>)> {
    receive(state, auth, client, multipart).await
}

/// The seeds' upload endpoint: the same as `POST /api/v1/files`.
#[utoipa::path(post, path = "/api/v1/mcp/upload", tag = "files",
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    security(("api_key" = []), ("bearer" = [])),
    responses((status = 201, body = Uploaded), (status = 200, body = Uploaded),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub async fn mcp_upload(
    State(state): State<AppState>,
    auth: Authed<scope::FilesWrite>,
    Client(client): Client,
    multipart: Multipart,
) -> ApiResult<(StatusCode, Json<Uploaded>)> {
    receive(state, auth, client, multipart).await
}

/// Text form fields are small; this bounds what is read of one.
const MAX_FIELD_BYTES: usize = 16 * 1024;

async fn receive(
    state: AppState,
    auth: Authed<scope::FilesWrite>,
    client: zentoria_platform::ClientInfo,
    mut multipart: Multipart,
) -> ApiResult<(StatusCode, Json<Uploaded>)> {
    let mut meta = UploadMeta::default();
    let mut upload = None;
    while let Some(mut field) = multipart.next_field().await.map_err(bad_multipart)? {
        match field.name().unwrap_or("") {
            "file" => {
                if upload.is_some() {
                    return Err(Error::invalid("send one file per request").into());
                }
                let name = field
                    .file_name()
                    .ok_or_else(|| Error::invalid("the \"file\" part needs a filename"))?
                    .to_owned();
                let declared = field.content_type().map(str::to_owned);
                let mut up = state
                    .knowledge
                    .begin_upload(&auth, &name, declared.as_deref())?;
                while let Some(bytes) = field.chunk().await.map_err(bad_multipart)? {
                    up.push(&bytes).await?;
                }
                upload = Some(up);
            }
            "collection" => meta.collection = Some(small_field(&mut field).await?),
            "tags" => meta.tags = parse_tags(&small_field(&mut field).await?)?,
            other => {
                return Err(Error::invalid(format!(
                    "unknown form field {other:?}; expected file, collection or tags"
                ))
                .into());
            }
        }
    }
    let up = upload.ok_or_else(|| {
        Error::invalid("no file: send the content in a multipart field named \"file\"")
    })?;
    let done = up.finish(meta, &client).await?;
    let status = if done.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(done)))
}

async fn small_field(field: &mut axum::extract::multipart::Field<'_>) -> ApiResult<String> {
    let mut buf = Vec::new();
    while let Some(bytes) = field.chunk().await.map_err(bad_multipart)? {
        buf.extend_from_slice(&bytes);
        if buf.len() > MAX_FIELD_BYTES {
            return Err(
                Error::invalid("a form field other than the file is at most 16 KiB").into(),
            );
        }
    }
    String::from_utf8(buf).map_err(|_| Error::invalid("form fields must be UTF-8 text").into())
}

/// `a, b` or `["a", "b"]`.
fn parse_tags(s: &str) -> ApiResult<Vec<String>> {
    let s = s.trim();
    if s.starts_with('[') {
        return serde_json::from_str(s).map_err(|_| {
            Error::invalid("tags must be comma-separated or a JSON array of strings").into()
        });
    }
    Ok(s.split(',').map(|t| t.trim().to_owned()).collect())
}

fn bad_multipart(e: axum::extract::multipart::MultipartError) -> ApiError {
    let status = e.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        return Error::TooLarge(e.body_text()).into();
    }
    Error::invalid(format!(
        "the multipart body is malformed: {}",
        e.body_text()
    ))
    .into()
}

/// Files the caller may see (their own; admins see all), with filters and paging.
#[utoipa::path(get, path = "/api/v1/files", tag = "files", params(FileQuery),
    security(("api_key" = []), ("bearer" = [])),
    responses((status = 200, body = FilePage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    auth: Authed<scope::FilesRead>,
    Query(q): Query<FileQuery>,
) -> ApiResult<Json<FilePage>> {
    Ok(Json(state.knowledge.list_files(&auth, &q).await?))
}

/// The seeds' file list: the same as `GET /api/v1/files`.
#[utoipa::path(get, path = "/api/v1/mcp/files", tag = "files", params(FileQuery),
    security(("api_key" = []), ("bearer" = [])),
    responses((status = 200, body = FilePage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn mcp_list(
    State(state): State<AppState>,
    auth: Authed<scope::FilesRead>,
    Query(q): Query<FileQuery>,
) -> ApiResult<Json<FilePage>> {
    Ok(Json(state.knowledge.list_files(&auth, &q).await?))
}

/// One file, with its ingestion status.
#[utoipa::path(get, path = "/api/v1/files/{id}", tag = "files",
    params(("id" = String, Path, description = "The file's id")),
    security(("api_key" = []), ("bearer" = [])),
    responses((status = 200, body = FileView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    auth: Authed<scope::FilesRead>,
    Path(id): Path<String>,
) -> ApiResult<Json<FileView>> {
    Ok(Json(state.knowledge.file(&auth, &id).await?))
}

/// Renames a file, replaces its tags or moves it to another collection (`""`: none).
#[utoipa::path(patch, path = "/api/v1/files/{id}", tag = "files",
    params(("id" = String, Path, description = "The file's id")), request_body = FilePatch,
    security(("api_key" = []), ("bearer" = [])),
    responses((status = 200, body = FileView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    auth: Authed<scope::FilesWrite>,
    Client(client): Client,
    Path(id): Path<String>,
    Json(patch): Json<FilePatch>,
) -> ApiResult<Json<FileView>> {
    Ok(Json(
        state
            .knowledge
            .update_file(&auth, &id, patch, &client)
            .await?,
    ))
}

/// Deletes a file; its content, chunks and search entries go with it.
#[utoipa::path(delete, path = "/api/v1/files/{id}", tag = "files",
    params(("id" = String, Path, description = "The file's id")),
    security(("api_key" = []), ("bearer" = [])),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    auth: Authed<scope::FilesWrite>,
    Client(client): Client,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.knowledge.delete_file(&auth, &id, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ingests the file again (after a failure, or to apply new chunking settings).
#[utoipa::path(post, path = "/api/v1/files/{id}/reindex", tag = "files",
    params(("id" = String, Path, description = "The file's id")),
    security(("api_key" = []), ("bearer" = [])),
    responses((status = 202, body = Uploaded), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn reindex(
    State(state): State<AppState>,
    auth: Authed<scope::FilesWrite>,
    Client(client): Client,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Uploaded>)> {
    let out = state.knowledge.reindex_file(&auth, &id, &client).await?;
    Ok((StatusCode::ACCEPTED, Json(out)))
}

/// The file's content, as stored, with its type; supports `Range: bytes=…` (one range).
#[utoipa::path(get, path = "/api/v1/files/{id}/content", tag = "files",
    params(("id" = String, Path, description = "The file's id")),
    security(("api_key" = []), ("bearer" = [])),
    responses((status = 200, description = "The whole content"), (status = 206, description = "The requested range"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 416, body = ErrorBody)))]
pub async fn content(
    State(state): State<AppState>,
    auth: Authed<scope::FilesRead>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let file = state.knowledge.file(&auth, &id).await?;
    let size = file.size.max(0) as u64;
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(r) => match parse_range(r, size) {
            RangeReq::Satisfiable(a, b) => Some((a, b)),
            RangeReq::Ignore => None,
            RangeReq::Unsatisfiable => {
                let mut resp = crate::error::error_response(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "range_not_satisfiable",
                    format!("the file has {size} bytes"),
                );
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    resp.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                return Ok(resp);
            }
        },
        None => None,
    };
    let (start, len) = match range {
        Some((a, b)) => (a, b - a + 1),
        None => (0, size),
    };
    let reader = state.knowledge.open_content(&auth, &id, start, len).await?;
    let mut resp = Response::new(Body::from_stream(reader_stream(reader)));
    let h = resp.headers_mut();
    let mime = if file.kind == "pdf" || file.kind == "docx" {
        file.mime.clone()
    } else {
        format!("{}; charset=utf-8", file.mime)
    };
    if let Ok(v) = HeaderValue::from_str(&mime) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&content_disposition(&file.name)) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", file.sha256)) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    // Never let a browser run uploaded HTML or scripts in our origin.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    if let Some((a, b)) = range {
        *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {a}-{b}/{size}")) {
            resp.headers_mut().insert(header::CONTENT_RANGE, v);
        }
    }
    Ok(resp)
}

fn reader_stream(
    reader: Box<dyn tokio::io::AsyncRead + Send + Unpin>,
) -> impl futures_util::Stream<Item = std::io::Result<Vec<u8>>> + Send {
    futures_util::stream::unfold(reader, |mut r| async move {
        let mut buf = vec![0u8; 64 * 1024];
        match r.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(buf), r))
            }
            Err(e) => Some((Err(e), r)),
        }
    })
}

/// `attachment` with an ASCII fallback name and the exact UTF-8 name (RFC 6266 / 8187).
fn content_disposition(name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[derive(Debug, PartialEq, Eq)]
enum RangeReq {
    /// Inclusive first and last byte.
    Satisfiable(u64, u64),
    /// Not a single bytes range we serve: answer with the whole content.
    Ignore,
    Unsatisfiable,
}

/// Parses a `Range` header for one byte range (`a-b`, `a-`, `-n`). Multiple ranges and other
/// units are ignored (the whole content is sent), as RFC 9110 allows.
fn parse_range(h: &str, size: u64) -> RangeReq {
    let Some(spec) = h.trim().strip_prefix("bytes=") else {
        return RangeReq::Ignore;
    };
    if spec.contains(',') {
        return RangeReq::Ignore;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeReq::Ignore;
    };
    let (a, b) = (a.trim(), b.trim());
    let parsed = match (a.is_empty(), b.is_empty()) {
        (false, _) => {
            let Ok(first) = a.parse::<u64>() else {
                return RangeReq::Ignore;
            };
            let last = if b.is_empty() {
                size.saturating_sub(1)
            } else {
                match b.parse::<u64>() {
                    Ok(l) if l >= first => l.min(size.saturating_sub(1)),
                    _ => return RangeReq::Ignore,
                }
            };
            if first >= size {
                return RangeReq::Unsatisfiable;
            }
            (first, last)
        }
        (true, false) => {
            let Ok(n) = b.parse::<u64>() else {
                return RangeReq::Ignore;
            };
            if n == 0 || size == 0 {
                return RangeReq::Unsatisfiable;
            }
            (size - n.min(size), size - 1)
        }
        (true, true) => return RangeReq::Ignore,
    };
    RangeReq::Satisfiable(parsed.0, parsed.1)
}

/// Collections the caller may see, with their file counts.
#[utoipa::path(get, path = "/api/v1/collections", tag = "files",
    security(("api_key" = []), ("bearer" = [])),
    responses((status = 200, body = Vec<CollectionView>), (status = 401, body = ErrorBody)))]
pub async fn collections(
    State(state): State<AppState>,
    auth: Authed<scope::FilesRead>,
) -> ApiResult<Json<Vec<CollectionView>>> {
    Ok(Json(state.knowledge.collections(&auth).await?))
}

#[utoipa::path(post, path = "/api/v1/collections", tag = "files", request_body = NewCollection,
    security(("api_key" = []), ("bearer" = [])),
    responses((status = 201, body = CollectionView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_collection(
    State(state): State<AppState>,
    auth: Authed<scope::FilesWrite>,
    Client(client): Client,
    Json(new): Json<NewCollection>,
) -> ApiResult<(StatusCode, Json<CollectionView>)> {
    let c = state
        .knowledge
        .create_collection(&auth, new, &client)
        .await?;
    Ok((StatusCode::CREATED, Json(c)))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CollectionDeleted {
    /// Files deleted with the collection.
    pub files_deleted: usize,
}

/// Deletes a collection (by id or name) and every file in it.
#[utoipa::path(delete, path = "/api/v1/collections/{id}", tag = "files",
    params(("id" = String, Path, description = "The collection's id or name")),
    security(("api_key" = []), ("bearer" = [])),
    responses((status = 200, body = CollectionDeleted), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_collection(
    State(state): State<AppState>,
    auth: Authed<scope::FilesWrite>,
    Client(client): Client,
    Path(id): Path<String>,
) -> ApiResult<Json<CollectionDeleted>> {
    let files_deleted = state
        .knowledge
        .delete_collection(&auth, &id, &client)
        .await?;
    Ok(Json(CollectionDeleted { files_deleted }))
}

/// Searches the caller's files: `keyword` (BM25) always; `semantic` and `hybrid` with an
/// embedder. Every hit carries its file and citation (page, character offsets, section).
#[utoipa::path(post, path = "/api/v1/search", tag = "files", request_body = SearchRequest,
    security(("api_key" = []), ("bearer" = [])),
    responses((status = 200, body = SearchResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn search(
    State(state): State<AppState>,
    auth: Authed<scope::FilesRead>,
    Json(req): Json<SearchRequest>,
) -> ApiResult<Json<SearchResponse>> {
    Ok(Json(state.knowledge.search(&auth, req).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-3", 10), RangeReq::Satisfiable(0, 3));
        assert_eq!(parse_range("bytes=4-", 10), RangeReq::Satisfiable(4, 9));
        assert_eq!(parse_range("bytes=-3", 10), RangeReq::Satisfiable(7, 9));
        assert_eq!(parse_range("bytes=-30", 10), RangeReq::Satisfiable(0, 9));
        assert_eq!(parse_range("bytes=5-100", 10), RangeReq::Satisfiable(5, 9));
        assert_eq!(parse_range("bytes=10-", 10), RangeReq::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 10), RangeReq::Unsatisfiable);
        assert_eq!(parse_range("bytes=3-1", 10), RangeReq::Ignore);
        assert_eq!(parse_range("bytes=0-1,3-4", 10), RangeReq::Ignore);
        assert_eq!(parse_range("items=0-1", 10), RangeReq::Ignore);
        assert_eq!(parse_range("bytes=x-1", 10), RangeReq::Ignore);
    }

    #[test]
    fn disposition_is_safe_and_exact() {
        assert_eq!(
            content_disposition("a\"b.txt"),
            "attachment; filename=\"a_b.txt\"; filename*=UTF-8''a%22b.txt"
        );
        assert_eq!(
            content_disposition("résumé.pdf"),
            "attachment; filename=\"r_sum_.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf"
        );
    }

    #[test]
    fn tags_forms() {
        assert_eq!(parse_tags("a, b").unwrap(), vec!["a", "b"]);
        assert_eq!(parse_tags("[\"a\",\"b c\"]").unwrap(), vec!["a", "b c"]);
        assert!(parse_tags("[1]").is_err());
    }
}
