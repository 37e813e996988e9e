//! What the knowledge API shows and accepts, shared by every front end.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use zentoria_store::repo::knowledge::{CollectionRow, FileRow};

/// A stored file and where its ingestion stands.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FileView {
    pub id: String,
    pub name: String,
    pub owner_id: String,
    pub collection_id: Option<String>,
    /// What the content is: text, markdown, html, pdf, docx, csv, json or code.
    pub kind: String,
    pub mime: String,
    /// For code: the language.
    pub language: Option<String>,
    pub size: i64,
    pub sha256: String,
    pub tags: Vec<String>,
    /// queued → extracting → embedding → indexing → ready | failed
    pub status: String,
    /// Why ingestion failed (or is being retried).
    pub error: Option<String>,
    pub chunk_count: i32,
    /// For paginated documents (PDF).
    pub pages: Option<i32>,
    #[serde(with = "zentoria_core::time::rfc3339_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(with = "zentoria_core::time::rfc3339_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: i64,
}

impl FileView {
    pub(crate) fn from_row(r: FileRow, tags: Vec<String>) -> Self {
        FileView {
            id: r.id,
            name: r.name,
            owner_id: r.owner_id,
            collection_id: r.collection_id,
            kind: r.kind,
            mime: r.mime,
            language: r.language,
            size: r.size,
            sha256: r.sha256,
            tags,
            status: r.status,
            error: r.error,
            chunk_count: r.chunk_count,
            pages: r.pages,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// The answer to an upload: the file, and whether it is new (identical content already
/// stored by the same owner returns the existing file).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Uploaded {
    pub file: FileView,
    pub created: bool,
    /// The ingestion job (only for new files).
    pub job_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FilePage {
    pub files: Vec<FileView>,
    /// Files matching the filter, across pages.
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
}

/// Filters and paging for listing files.
#[derive(Debug, Clone, Default, Deserialize, ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FileQuery {
    /// A collection id or name.
    pub collection: Option<String>,
    pub tag: Option<String>,
    /// text, markdown, html, pdf, docx, csv, json or code.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub status: Option<String>,
    /// `created_at` (default), `name`, `size` or `updated_at`; prefix `-` for descending.
    pub sort: Option<String>,
    /// 1–500, default 50.
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

/// Changes to a file; absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FilePatch {
    pub name: Option<String>,
    pub tags: Option<Vec<String>>,
    /// A collection id or name; `""` takes the file out of its collection.
    pub collection: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CollectionView {
    pub id: String,
    pub name: String,
    pub description: String,
    pub owner_id: String,
    pub file_count: i64,
    #[serde(with = "zentoria_core::time::rfc3339_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
}

impl From<CollectionRow> for CollectionView {
    fn from(r: CollectionRow) -> Self {
        CollectionView {
            id: r.id,
            name: r.name,
            description: r.description,
            owner_id: r.owner_id,
            file_count: r.file_count,
            created_at: r.created_at,
        }
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCollection {
    pub name: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SearchMode {
    /// BM25 over the words of the chunks; always available.
    #[default]
    Keyword,
    /// Nearest chunks by meaning; needs an embedder.
    Semantic,
    /// Both lists fused by reciprocal rank.
    Hybrid,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchFilters {
    /// Only these kinds of files.
    #[serde(default, rename = "types")]
    pub kinds: Vec<String>,
    /// Files carrying any of these tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Only these files.
    #[serde(default)]
    pub file_ids: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    pub query: String,
    /// A collection id or name.
    pub collection: Option<String>,
    /// 1–100, default 10.
    pub top_k: Option<usize>,
    #[serde(default)]
    pub mode: SearchMode,
    #[serde(default)]
    pub filters: SearchFilters,
    /// Hybrid only: the keyword ranking's weight in the fusion (default
    /// `knowledge.hybrid_keyword_weight`, 1).
    pub keyword_weight: Option<f32>,
    /// Hybrid only: the semantic ranking's weight (default `knowledge.hybrid_semantic_weight`, 1).
    pub semantic_weight: Option<f32>,
    /// Semantic and hybrid: the query's embedding, when the caller made it with the configured
    /// embedder (the server then does not embed `query`; keyword matching still uses it).
    pub vector: Option<Vec<f32>>,
    /// Semantic and hybrid: leave out chunks whose cosine similarity to the query is below
    /// this (-1 to 1), so a question nothing matches finds nothing rather than the nearest.
    pub min_similarity: Option<f32>,
}

/// Where a hit's text sits in its file.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Citation {
    /// 1-based page where the chunk starts (paginated documents).
    pub page: Option<i32>,
    /// Character (Unicode scalar) offsets of the chunk in the file's extracted text.
    pub start_char: i64,
    pub end_char: i64,
    /// The section the chunk is in, as "Heading > Subheading".
    pub heading: Option<String>,
    /// The chunk's position in the file (0-based).
    pub chunk_index: i32,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SearchHit {
    pub chunk_id: i64,
    pub file_id: String,
    pub file_name: String,
    pub collection_id: Option<String>,
    pub text: String,
    pub score: f32,
    pub citation: Citation,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SearchResponse {
    pub query: String,
    pub mode: SearchMode,
    pub hits: Vec<SearchHit>,
    pub took_ms: f64,
}
