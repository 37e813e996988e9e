//! What chat takes and gives: requests, sessions, messages and stream events as the API
//! shows them.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use zentoria_core::Error;
use zentoria_store::repo::chat as repo;

use super::prompt::Source;
use crate::screen::Finding;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SessionView {
    pub id: String,
    pub title: String,
    /// The session's model (`provider/model` or an alias); none: the default model.
    pub model: Option<String>,
    pub system_prompt: Option<String>,
    /// Whether questions are answered from the owner's documents.
    pub knowledge: bool,
    /// Answers come from this collection only.
    pub collection_id: Option<String>,
    pub message_count: i32,
    pub owner_id: String,
    #[serde(with = "zentoria_core::time::rfc3339_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(with = "zentoria_core::time::rfc3339_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: i64,
}

impl From<repo::SessionRow> for SessionView {
    fn from(r: repo::SessionRow) -> Self {
        SessionView {
            id: r.id,
            title: r.title,
            model: r.model,
            system_prompt: r.system_prompt,
            knowledge: r.knowledge,
            collection_id: r.collection_id,
            message_count: r.message_count,
            owner_id: r.owner_id,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MessageView {
    pub id: String,
    /// `user` or `assistant`.
    pub role: String,
    pub content: String,
    /// The model that answered, as `provider/model` (assistant messages from a model).
    pub model: Option<String>,
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
    /// From the request reaching the model to the last token.
    pub latency_ms: Option<i64>,
    /// From the request reaching the model to its first token (streamed answers).
    pub ttft_ms: Option<i64>,
    /// `stop`, `length`, `no_sources` (answered without a model: nothing relevant was found),
    /// `cancelled` (the client went away), `error`, …
    pub finish_reason: Option<String>,
    /// The numbered passages the answer was given, `cited` when it cites them.
    pub citations: Vec<Source>,
    /// What a reasoning model thought before answering (asked with `reasoning_effort`, or a
    /// model that always thinks).
    pub reasoning: Option<String>,
    #[serde(with = "zentoria_core::time::rfc3339_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
}

impl From<repo::MessageRow> for MessageView {
    fn from(r: repo::MessageRow) -> Self {
        MessageView {
            citations: r
                .citations
                .as_deref()
                .and_then(|c| serde_json::from_str(c).ok())
                .unwrap_or_default(),
            id: r.id,
            role: r.role,
            content: r.content,
            model: r.model,
            prompt_tokens: r.prompt_tokens,
            completion_tokens: r.completion_tokens,
            latency_ms: r.latency_ms,
            ttft_ms: r.ttft_ms,
            finish_reason: r.finish_reason,
            reasoning: r.reasoning,
            created_at: r.created_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SessionWithMessages {
    #[serde(flatten)]
    pub session: SessionView,
    /// Oldest first.
    pub messages: Vec<MessageView>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SessionList {
    /// Most recently active first.
    pub sessions: Vec<SessionView>,
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
}

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SessionPage {
    /// 1–200, default 50.
    pub limit: Option<i64>,
    pub offset: Option<i64>,
    /// Admins: everyone's sessions.
    pub all: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSession {
    /// Default: taken from the first question.
    pub title: Option<String>,
    pub model: Option<String>,
    pub system_prompt: Option<String>,
    /// Answer from the owner's documents (implied by `collection`).
    pub knowledge: Option<bool>,
    /// A collection id or name to answer from.
    pub collection: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionPatch {
    pub title: Option<String>,
    /// `""` returns to the default model.
    pub model: Option<String>,
    /// `""` removes it.
    pub system_prompt: Option<String>,
    pub knowledge: Option<bool>,
    /// A collection id or name; `""` removes it.
    pub collection: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendMessage {
    pub content: String,
    /// For this answer only; default: the session's model, else the default model.
    pub model: Option<String>,
    /// Answer from documents this time (default: the session's setting).
    pub knowledge: Option<bool>,
    /// Answer from this collection this time.
    pub collection: Option<String>,
    /// 0–2.
    pub temperature: Option<f32>,
    /// Default `ai.max_answer_tokens`.
    pub max_tokens: Option<u32>,
    /// How hard a reasoning model thinks: `none`, `minimal`, `low`, `medium`, `high`, as
    /// OpenAI names it (mapped per provider like the gateway's).
    pub reasoning_effort: Option<String>,
    /// Answer as server-sent events (also with `Accept: text/event-stream`).
    pub stream: Option<bool>,
}

/// The seeds' `POST /api/v1/chat`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DirectChat {
    /// The question.
    #[serde(alias = "content")]
    pub message: String,
    /// Continue this session; none: a new session is started.
    pub session_id: Option<String>,
    pub model: Option<String>,
    /// For a new session.
    pub system_prompt: Option<String>,
    pub knowledge: Option<bool>,
    pub collection: Option<String>,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    pub reasoning_effort: Option<String>,
    pub stream: Option<bool>,
}

impl DirectChat {
    pub(crate) fn into_message(self) -> SendMessage {
        SendMessage {
            content: self.message,
            // A new session already carries these; an existing one takes them per message.
            model: self.model,
            knowledge: self.knowledge,
            collection: self.collection,
            temperature: self.temperature,
            max_tokens: self.max_tokens,
            reasoning_effort: self.reasoning_effort,
            stream: self.stream,
        }
    }
}

/// Something screening noticed (`ai.injection_screening` = `warn`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Warning {
    /// `message` (the question), `command` (an AI command) or `source` (a retrieved passage).
    #[serde(rename = "in")]
    pub place: String,
    pub file_id: Option<String>,
    pub chunk_id: Option<i64>,
    /// Rule ids that matched.
    pub rules: Vec<String>,
    pub message: String,
}

impl Warning {
    pub(crate) fn from_findings(place: &str, source: Option<&Source>, f: &[Finding]) -> Warning {
        let what = match source {
            Some(s) => format!("a passage of {}", s.file_name),
            None => format!("the {place}"),
        };
        Warning {
            place: place.to_owned(),
            file_id: source.map(|s| s.file_id.clone()),
            chunk_id: source.map(|s| s.chunk_id),
            rules: f.iter().map(|f| f.rule.to_owned()).collect(),
            message: format!(
                "{what} looks like a prompt-injection attempt; it was recorded in the audit log"
            ),
        }
    }
}

/// A whole answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Reply {
    pub session_id: String,
    pub user_message: MessageView,
    /// The answer, with its citations.
    pub message: MessageView,
    pub warnings: Vec<Warning>,
}

/// One event of a streamed answer (the SSE event name is `type`).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChatEvent {
    /// First: the stored question, the model and the passages the answer may cite.
    Start {
        session_id: String,
        user_message: MessageView,
        model: Option<String>,
        sources: Vec<Source>,
        warnings: Vec<Warning>,
    },
    /// A piece of the model's reasoning, before the answer's first `delta`.
    Reasoning { text: String },
    /// A piece of the answer.
    Delta { text: String },
    /// Last: the stored answer with its token counts, timings and citations.
    Done { message: MessageView },
    /// The answer failed; the stream ends.
    Error { code: String, message: String },
}

impl ChatEvent {
    /// The event a failure ends a stream with (internal causes stay in the logs).
    pub fn error(e: &Error) -> ChatEvent {
        if let Error::Internal(cause) = e {
            tracing::error!(error = ?cause, "a chat answer failed");
        }
        ChatEvent::Error {
            code: e.code().to_owned(),
            message: e.public_message(),
        }
    }

    /// The event's name, for SSE.
    pub fn name(&self) -> &'static str {
        match self {
            ChatEvent::Start { .. } => "start",
            ChatEvent::Reasoning { .. } => "reasoning",
            ChatEvent::Delta { .. } => "delta",
            ChatEvent::Done { .. } => "done",
            ChatEvent::Error { .. } => "error",
        }
    }
}
