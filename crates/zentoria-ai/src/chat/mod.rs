//! Chat: sessions with persisted history, answers whole or streamed, and answers from the
//! user's documents with numbered citations.
//!
//! A turn is prepared once ([`Chat::prepare`]: the session, the model, retrieval, screening,
//! the prompt fitted to the context window, the question stored) and then answered either
//! whole ([`Chat::answer`]) or as a stream of [`ChatEvent`]s ([`Chat::answer_stream`]); both
//! store the answer with its model, token counts, latency and time to first token.

pub mod prompt;
mod views;

use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;
use zentoria_core::id::new_id;
use zentoria_core::time::now_ms;
use zentoria_core::{Error, Result, Scope};
use zentoria_knowledge::{Knowledge, SearchMode, SearchRequest};
use zentoria_platform::{AuditEvent, AuditLog, ClientInfo, Outcome, Principal};
use zentoria_providers::{ChatRequest, FinishReason, Message, StreamEvent};
use zentoria_store::Db;
use zentoria_store::repo::chat as repo;

use crate::screen::{self, Finding};
use crate::{Ai, Route};
use prompt::{Budget, NOTHING_FOUND, RAG_INSTRUCTIONS, Source};
pub use views::*;

/// The title a session has until its first question names it.
const UNTITLED: &str = "New chat";
const MAX_MESSAGE_CHARS: usize = 100_000;
const MAX_TITLE_CHARS: usize = 200;
const MAX_SYSTEM_PROMPT_CHARS: usize = 20_000;

/// What screening does with a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScreeningMode {
    Off,
    /// Record it in the audit log and tell the caller; the text is used.
    #[default]
    Warn,
    /// Record it; a suspicious question is refused and a suspicious passage left out.
    Block,
}

impl ScreeningMode {
    /// What screening finds in `text` (nothing when it is off).
    pub fn screen(self, text: &str) -> Vec<Finding> {
        match self {
            ScreeningMode::Off => Vec::new(),
            _ => screen::screen(text),
        }
    }

    /// How a finding is recorded in the audit log: denied when it was blocked.
    pub fn outcome(self) -> Outcome {
        match self {
            ScreeningMode::Block => Outcome::Denied,
            _ => Outcome::Success,
        }
    }
}

impl std::str::FromStr for ScreeningMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim() {
            "off" => Ok(ScreeningMode::Off),
            "warn" => Ok(ScreeningMode::Warn),
            "block" => Ok(ScreeningMode::Block),
            other => Err(Error::invalid(format!(
                "injection screening {other:?} is not off, warn or block"
            ))),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ChatSettings {
    /// The context window assumed for every model, in tokens.
    pub context_tokens: usize,
    /// The longest answer asked for when a request names no `max_tokens`.
    pub max_answer_tokens: u32,
    /// Used when a session has no system prompt of its own.
    pub system_prompt: Option<String>,
    /// Passages retrieved for an answer from documents.
    pub rag_top_k: usize,
    /// Semantic matches less similar than this are not relevant.
    pub rag_min_similarity: f32,
    /// Most history messages read for a prompt (the window then decides).
    pub history_limit: i64,
    pub screening: ScreeningMode,
}

impl Default for ChatSettings {
    fn default() -> Self {
        ChatSettings {
            context_tokens: 8192,
            max_answer_tokens: 1024,
            system_prompt: None,
            rag_top_k: 5,
            rag_min_similarity: 0.3,
            history_limit: 200,
            screening: ScreeningMode::Warn,
        }
    }
}

/// The chat service. Cheap to clone.
#[derive(Clone)]
pub struct Chat {
    inner: Arc<Inner>,
}

struct Inner {
    ai: Ai,
    db: Db,
    knowledge: Knowledge,
    audit: AuditLog,
    settings: ChatSettings,
}

/// A question stored and ready to be answered.
pub struct Turn {
    session: repo::SessionRow,
    route: Route,
    /// The model that took the question (a fallback's, when the routed one was down).
    answered_by: Option<String>,
    request: ChatRequest,
    sources: Vec<Source>,
    /// Set when the answer is known without a model (nothing relevant was found).
    canned: Option<String>,
    pub user_message: MessageView,
    pub warnings: Vec<Warning>,
}

impl Turn {
    pub fn session_id(&self) -> &str {
        &self.session.id
    }

    /// The model that will answer, as `provider/model`; `None` when the answer needs none.
    pub fn model(&self) -> Option<&str> {
        let model = self.answered_by.as_deref().unwrap_or(&self.route.model);
        self.canned.is_none().then_some(model)
    }
}

impl Chat {
    pub fn new(
        ai: Ai,
        db: Db,
        knowledge: Knowledge,
        audit: AuditLog,
        settings: ChatSettings,
    ) -> Chat {
        Chat {
            inner: Arc::new(Inner {
                ai,
                db,
                knowledge,
                audit,
                settings,
            }),
        }
    }

    pub fn ai(&self) -> &Ai {
        &self.inner.ai
    }

    pub fn settings(&self) -> &ChatSettings {
        &self.inner.settings
    }

    // ---- sessions ---------------------------------------------------------------------

    pub async fn create_session(&self, p: &Principal, s: NewSession) -> Result<SessionView> {
        p.require(Scope::Chat)?;
        let collection_id = self.collection_id(p, s.collection.as_deref()).await?;
        if let Some(m) = s.model.as_deref().filter(|m| !m.trim().is_empty()) {
            self.inner.ai.route(Some(m))?;
        }
        let now = now_ms();
        let row = repo::SessionRow {
            id: new_id(),
            owner_id: p.user_id.clone(),
            title: title(s.title.as_deref().unwrap_or(UNTITLED))?,
            model: non_empty(s.model),
            system_prompt: system_prompt(s.system_prompt)?,
            knowledge: s.knowledge.unwrap_or(false) || collection_id.is_some(),
            collection_id,
            message_count: 0,
            created_at: now,
            updated_at: now,
        };
        repo::insert_session(&self.inner.db, &row).await?;
        Ok(row.into())
    }

    pub async fn sessions(&self, p: &Principal, page: &SessionPage) -> Result<SessionList> {
        p.require(Scope::Chat)?;
        let limit = page.limit.unwrap_or(50).clamp(1, 200);
        let offset = page.offset.unwrap_or(0).max(0);
        let owner = (!p.is_admin() || !page.all.unwrap_or(false)).then_some(p.user_id.as_str());
        let (rows, total) = repo::sessions(&self.inner.db, owner, limit, offset).await?;
        Ok(SessionList {
            sessions: rows.into_iter().map(SessionView::from).collect(),
            total,
            limit,
            offset,
        })
    }

    pub async fn session(&self, p: &Principal, id: &str) -> Result<SessionWithMessages> {
        p.require(Scope::Chat)?;
        let row = self.own_session(p, id).await?;
        let messages = repo::messages(&self.inner.db, id).await?;
        Ok(SessionWithMessages {
            session: row.into(),
            messages: messages.into_iter().map(MessageView::from).collect(),
        })
    }

    pub async fn update_session(
        &self,
        p: &Principal,
        id: &str,
        patch: SessionPatch,
    ) -> Result<SessionView> {
        p.require(Scope::Chat)?;
        self.own_session(p, id).await?;
        let title = patch.title.as_deref().map(title).transpose()?;
        let model = patch.model.map(|m| m.trim().to_owned());
        if let Some(m) = model.as_deref().filter(|m| !m.is_empty()) {
            self.inner.ai.route(Some(m))?;
        }
        let system_prompt = match patch.system_prompt {
            Some(s) => Some(system_prompt(Some(s))?),
            None => None,
        };
        let collection_id = match patch.collection.as_deref().map(str::trim) {
            None => None,
            Some("") => Some(None),
            Some(c) => Some(self.collection_id(p, Some(c)).await?),
        };
        let change = repo::SessionChange {
            title: title.as_deref(),
            model: model.as_deref().map(|m| Some(m).filter(|m| !m.is_empty())),
            system_prompt: system_prompt.as_ref().map(|s| s.as_deref()),
            knowledge: patch.knowledge,
            collection_id: collection_id.as_ref().map(|c| c.as_deref()),
        };
        repo::update_session(&self.inner.db, id, &change, now_ms()).await?;
        Ok(self.own_session(p, id).await?.into())
    }

    pub async fn delete_session(&self, p: &Principal, client: &ClientInfo, id: &str) -> Result<()> {
        p.require(Scope::Chat)?;
        self.own_session(p, id).await?;
        repo::delete_session(&self.inner.db, id).await?;
        self.inner
            .audit
            .record(
                AuditEvent::new("chat.session.delete", Outcome::Success, client)
                    .actor(Some(p.actor()))
                    .resource("chat_session", id),
            )
            .await;
        Ok(())
    }

    async fn own_session(&self, p: &Principal, id: &str) -> Result<repo::SessionRow> {
        match repo::session(&self.inner.db, id).await? {
            Some(s) if s.owner_id == p.user_id || p.is_admin() => Ok(s),
            _ => Err(Error::not_found(format!("no chat session {id:?}"))),
        }
    }

    async fn collection_id(&self, p: &Principal, c: Option<&str>) -> Result<Option<String>> {
        match c.map(str::trim).filter(|c| !c.is_empty()) {
            Some(c) => Ok(Some(self.inner.knowledge.collection(p, c).await?.id)),
            None => Ok(None),
        }
    }

    // ---- turns ------------------------------------------------------------------------

    /// The seeds' direct chat: a question to a new session, or to `session_id`'s.
    pub async fn direct(
        &self,
        p: &Principal,
        client: &ClientInfo,
        req: DirectChat,
    ) -> Result<Turn> {
        p.require(Scope::Chat)?;
        let session_id = match req.session_id.as_deref() {
            Some(id) => id.to_owned(),
            None => {
                let s = self
                    .create_session(
                        p,
                        NewSession {
                            title: None,
                            model: req.model.clone(),
                            system_prompt: req.system_prompt.clone(),
                            knowledge: req.knowledge,
                            collection: req.collection.clone(),
                        },
                    )
                    .await?;
                s.id
            }
        };
        self.prepare(p, client, &session_id, req.into_message())
            .await
    }

    /// Stores the question and builds the request that answers it.
    pub async fn prepare(
        &self,
        p: &Principal,
        client: &ClientInfo,
        session_id: &str,
        req: SendMessage,
    ) -> Result<Turn> {
        p.require(Scope::Chat)?;
        let s = &self.inner.settings;
        let content = req.content.trim();
        if content.is_empty() {
            return Err(Error::invalid("content must not be empty"));
        }
        if content.chars().count() > MAX_MESSAGE_CHARS {
            return Err(Error::invalid(format!(
                "a message is at most {MAX_MESSAGE_CHARS} characters"
            )));
        }
        if let Some(t) = req.temperature
            && !(0.0..=2.0).contains(&t)
        {
            return Err(Error::invalid("temperature must be between 0 and 2"));
        }
        crate::check_reasoning_effort(req.reasoning_effort.as_deref())?;
        let session = self.own_session(p, session_id).await?;
        let route = self
            .inner
            .ai
            .route(req.model.as_deref().or(session.model.as_deref()))?;
        let mut warnings = Vec::new();
        let findings = s.screening.screen(content);
        if !findings.is_empty() {
            self.record_findings(p, client, &session.id, "message", None, &findings)
                .await;
            if s.screening == ScreeningMode::Block {
                return Err(Error::invalid(format!(
                    "the message looks like a prompt-injection attempt ({}) and was refused; \
                     rephrase it",
                    rules(&findings)
                )));
            }
            warnings.push(Warning::from_findings("message", None, &findings));
        }

        let collection = match req.collection.as_deref() {
            Some(c) => self.collection_id(p, Some(c)).await?,
            None => session.collection_id.clone(),
        };
        let use_knowledge = req.knowledge.unwrap_or(session.knowledge) || collection.is_some();
        let mut sources = Vec::new();
        if use_knowledge {
            sources = self.retrieve(p, content, collection).await?;
            let mut kept = Vec::with_capacity(sources.len());
            for src in sources {
                let findings = s.screening.screen(&src.text);
                if findings.is_empty() {
                    kept.push(src);
                    continue;
                }
                self.record_findings(p, client, &session.id, "source", Some(&src), &findings)
                    .await;
                warnings.push(Warning::from_findings("source", Some(&src), &findings));
                if s.screening != ScreeningMode::Block {
                    kept.push(src);
                }
            }
            for (i, src) in kept.iter_mut().enumerate() {
                src.n = i + 1;
            }
            sources = kept;
        }

        let max_tokens = req.max_tokens.unwrap_or(s.max_answer_tokens).max(1);
        // A reasoning model's thoughts count against the limit (Claude's budget alone is at
        // least 1,024 tokens): unless the message sets one, the provider's own applies. The
        // context window still keeps room for `max_tokens`.
        let thinks = req.reasoning_effort.as_deref().is_some_and(|e| e != "none");
        let limit = (req.max_tokens.is_some() || !thinks).then_some(max_tokens);
        let history: Vec<Message> =
            repo::recent_messages(&self.inner.db, &session.id, s.history_limit)
                .await?
                .into_iter()
                .map(|m| match m.role.as_str() {
                    "assistant" => Message::assistant(m.content),
                    _ => Message::user(m.content),
                })
                .collect();
        let system = match (&session.system_prompt, &s.system_prompt) {
            (Some(own), _) => Some(own.clone()),
            (None, default) => default.clone(),
        };
        let system = if use_knowledge {
            Some(match system {
                Some(sys) => format!("{sys}\n\n{RAG_INSTRUCTIONS}"),
                None => RAG_INSTRUCTIONS.to_owned(),
            })
        } else {
            system
        };
        let had_sources = !sources.is_empty();
        let fitted = Budget {
            window: s.context_tokens,
            answer: max_tokens as usize,
        }
        .fit(system.as_deref(), &history, content, sources)?;
        if had_sources && fitted.sources.is_empty() {
            return Err(Error::invalid(format!(
                "the context window (ai.context_tokens {}) cannot hold the question and even one \
                 retrieved passage; raise it or ask for a shorter answer",
                s.context_tokens
            )));
        }
        let canned = (use_knowledge && fitted.sources.is_empty()).then(|| NOTHING_FOUND.to_owned());

        let now = now_ms();
        let user = repo::MessageRow {
            id: new_id(),
            session_id: session.id.clone(),
            role: "user".into(),
            content: content.to_owned(),
            model: None,
            prompt_tokens: None,
            completion_tokens: None,
            latency_ms: None,
            ttft_ms: None,
            finish_reason: None,
            citations: None,
            created_at: now,
            reasoning: None,
        };
        repo::insert_message(&self.inner.db, &user).await?;
        if session.message_count == 0 && session.title == UNTITLED {
            let t = title_from(content);
            let change = repo::SessionChange {
                title: Some(&t),
                ..Default::default()
            };
            repo::update_session(&self.inner.db, &session.id, &change, now).await?;
        }
        let request = ChatRequest {
            model: String::new(),
            messages: fitted.messages,
            tools: Vec::new(),
            temperature: req.temperature,
            max_tokens: limit,
            top_p: None,
            stop: Vec::new(),
            reasoning_effort: req.reasoning_effort,
            ..ChatRequest::default()
        };
        Ok(Turn {
            session,
            route,
            answered_by: None,
            request,
            sources: fitted.sources,
            canned,
            user_message: user.into(),
            warnings,
        })
    }

    /// The passages that best match the question, numbered from 1.
    async fn retrieve(
        &self,
        p: &Principal,
        question: &str,
        collection: Option<String>,
    ) -> Result<Vec<Source>> {
        let k = &self.inner.knowledge;
        let semantic = k.embedder().is_some();
        let query: String = question.chars().take(4000).collect();
        let found = k
            .search(
                p,
                SearchRequest {
                    query,
                    collection,
                    top_k: Some(self.inner.settings.rag_top_k.clamp(1, 50)),
                    mode: if semantic {
                        SearchMode::Hybrid
                    } else {
                        SearchMode::Keyword
                    },
                    min_similarity: semantic.then_some(self.inner.settings.rag_min_similarity),
                    ..Default::default()
                },
            )
            .await?;
        Ok(found
            .hits
            .into_iter()
            .enumerate()
            .map(|(i, h)| Source {
                n: i + 1,
                file_id: h.file_id,
                file_name: h.file_name,
                chunk_id: h.chunk_id,
                page: h.citation.page,
                start_char: h.citation.start_char,
                end_char: h.citation.end_char,
                heading: h.citation.heading,
                score: h.score,
                text: h.text,
                cited: false,
            })
            .collect())
    }

    async fn record_findings(
        &self,
        p: &Principal,
        client: &ClientInfo,
        session_id: &str,
        place: &str,
        source: Option<&Source>,
        findings: &[Finding],
    ) {
        let outcome = self.inner.settings.screening.outcome();
        let details = serde_json::json!({
            "in": place,
            "session_id": session_id,
            "file_id": source.map(|s| s.file_id.clone()),
            "chunk_id": source.map(|s| s.chunk_id),
            "findings": findings,
            "mode": format!("{:?}", self.inner.settings.screening).to_lowercase(),
        });
        self.inner
            .audit
            .record(
                AuditEvent::new("ai.injection_suspected", outcome, client)
                    .actor(Some(p.actor()))
                    .resource("chat_session", session_id)
                    .details(details),
            )
            .await;
    }

    /// Answers a prepared turn whole and stores the answer.
    pub async fn answer(&self, p: &Principal, turn: Turn) -> Result<Reply> {
        let started = Instant::now();
        let (content, reasoning, model, usage, finish) = match &turn.canned {
            Some(text) => (
                text.clone(),
                String::new(),
                None,
                None,
                "no_sources".to_owned(),
            ),
            None => {
                let answer = self
                    .inner
                    .ai
                    .chat(p, &turn.route, turn.request.clone())
                    .await?;
                (
                    answer.message.content,
                    answer.message.reasoning,
                    Some(answer.model),
                    answer.usage,
                    finish_name(&answer.finish_reason),
                )
            }
        };
        let message = self
            .store_answer(
                &turn,
                Answered {
                    content,
                    reasoning,
                    model,
                    usage,
                    latency_ms: started.elapsed().as_millis() as i64,
                    ttft_ms: None,
                    finish_reason: finish,
                },
            )
            .await?;
        Ok(Reply {
            session_id: turn.session.id.clone(),
            user_message: turn.user_message,
            message,
            warnings: turn.warnings,
        })
    }

    /// Answers a prepared turn as a stream: `start`, `delta`s as the model writes, then
    /// `done` with the stored answer, or `error`. An `Err` means nothing was streamed yet.
    /// When the stream is dropped early (the client went away), the upstream request is
    /// dropped with it and what had arrived is stored as an unfinished answer.
    pub async fn answer_stream(
        &self,
        p: &Principal,
        mut turn: Turn,
    ) -> Result<futures_util::stream::BoxStream<'static, ChatEvent>> {
        let started = Instant::now();
        let upstream = match &turn.canned {
            None => {
                let s = self
                    .inner
                    .ai
                    .chat_stream(p, &turn.route, turn.request.clone())
                    .await?;
                turn.answered_by = Some(s.model);
                Some(s.events)
            }
            Some(_) => None,
        };
        let start = ChatEvent::Start {
            session_id: turn.session.id.clone(),
            user_message: turn.user_message.clone(),
            model: turn.model().map(str::to_owned),
            sources: turn.sources.clone(),
            warnings: turn.warnings.clone(),
        };
        let pending = Pending {
            chat: self.clone(),
            turn: Some(turn),
            started,
            text: String::new(),
            reasoning: String::new(),
            ttft_ms: None,
            usage: None,
        };
        let Some(upstream) = upstream else {
            let mut pending = pending;
            let text = pending
                .turn
                .as_ref()
                .and_then(|t| t.canned.clone())
                .unwrap_or_default();
            pending.text = text.clone();
            let done = async move {
                match pending.finish("no_sources".into(), None).await {
                    Ok(message) => ChatEvent::Done { message },
                    Err(e) => ChatEvent::error(&e),
                }
            };
            return Ok(
                futures_util::stream::iter([start, ChatEvent::Delta { text }])
                    .chain(futures_util::stream::once(done))
                    .boxed(),
            );
        };
        let body = futures_util::stream::unfold(
            (upstream, Some(pending)),
            |(mut upstream, pending)| async move {
                let mut pending = pending?;
                loop {
                    match upstream.next().await {
                        Some(Ok(StreamEvent::Delta { text })) => {
                            pending.first_token();
                            pending.text.push_str(&text);
                            return Some((ChatEvent::Delta { text }, (upstream, Some(pending))));
                        }
                        Some(Ok(StreamEvent::Usage(u))) => pending.usage = Some(u),
                        Some(Ok(StreamEvent::Reasoning { text })) => {
                            pending.first_token();
                            pending.reasoning.push_str(&text);
                            return Some((
                                ChatEvent::Reasoning { text },
                                (upstream, Some(pending)),
                            ));
                        }
                        Some(Ok(StreamEvent::ToolCall(_) | StreamEvent::ThinkingBlock(_))) => {}
                        Some(Ok(StreamEvent::Done { finish_reason })) => {
                            let model = pending.model();
                            let event =
                                match pending.finish(finish_name(&finish_reason), model).await {
                                    Ok(message) => ChatEvent::Done { message },
                                    Err(e) => ChatEvent::error(&e),
                                };
                            return Some((event, (upstream, None)));
                        }
                        Some(Err(e)) => {
                            let e = crate::upstream_error(e);
                            let model = pending.model();
                            let _ = pending.finish("error".into(), model).await;
                            return Some((ChatEvent::error(&e), (upstream, None)));
                        }
                        None => {
                            let e = Error::Upstream(
                                "the model's stream ended without finishing".into(),
                            );
                            let model = pending.model();
                            let _ = pending.finish("error".into(), model).await;
                            return Some((ChatEvent::error(&e), (upstream, None)));
                        }
                    }
                }
            },
        );
        Ok(futures_util::stream::once(std::future::ready(start))
            .chain(body)
            .boxed())
    }

    async fn store_answer(&self, turn: &Turn, a: Answered) -> Result<MessageView> {
        let cited = prompt::cited_numbers(&a.content);
        let citations: Vec<Source> = turn
            .sources
            .iter()
            .cloned()
            .map(|mut s| {
                s.cited = cited.contains(&s.n);
                s
            })
            .collect();
        let row = repo::MessageRow {
            id: new_id(),
            session_id: turn.session.id.clone(),
            role: "assistant".into(),
            content: a.content,
            model: a.model,
            prompt_tokens: a.usage.map(|u| u.prompt_tokens as i64),
            completion_tokens: a.usage.map(|u| u.completion_tokens as i64),
            latency_ms: Some(a.latency_ms),
            ttft_ms: a.ttft_ms,
            finish_reason: Some(a.finish_reason),
            citations: (!citations.is_empty())
                .then(|| serde_json::to_string(&citations))
                .transpose()
                .map_err(Error::internal)?,
            created_at: now_ms(),
            reasoning: (!a.reasoning.is_empty()).then_some(a.reasoning),
        };
        repo::insert_message(&self.inner.db, &row).await?;
        Ok(row.into())
    }
}

struct Answered {
    content: String,
    reasoning: String,
    model: Option<String>,
    usage: Option<zentoria_providers::Usage>,
    latency_ms: i64,
    ttft_ms: Option<i64>,
    finish_reason: String,
}

/// An answer being streamed; stored when it finishes, or — when dropped first — stored in
/// the background as far as it got.
struct Pending {
    chat: Chat,
    turn: Option<Turn>,
    started: Instant,
    text: String,
    reasoning: String,
    ttft_ms: Option<i64>,
    usage: Option<zentoria_providers::Usage>,
}

impl Pending {
    /// Notes the time to the first token (a thought or a piece of the answer) once.
    fn first_token(&mut self) {
        if self.ttft_ms.is_none() {
            self.ttft_ms = Some(self.started.elapsed().as_millis() as i64);
        }
    }

    fn model(&self) -> Option<String> {
        self.turn
            .as_ref()
            .and_then(|t| t.model().map(str::to_owned))
    }

    fn answered(&mut self, finish_reason: String, model: Option<String>) -> Answered {
        Answered {
            content: std::mem::take(&mut self.text),
            reasoning: std::mem::take(&mut self.reasoning),
            model,
            usage: self.usage,
            latency_ms: self.started.elapsed().as_millis() as i64,
            ttft_ms: self.ttft_ms,
            finish_reason,
        }
    }

    async fn finish(mut self, finish_reason: String, model: Option<String>) -> Result<MessageView> {
        let turn = self
            .turn
            .take()
            .ok_or_else(|| Error::bug("answer stored twice"))?;
        let answered = self.answered(finish_reason, model);
        self.chat.store_answer(&turn, answered).await
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let Some(turn) = self.turn.take() else { return };
        let model = turn.model().map(str::to_owned);
        let answered = self.answered("cancelled".into(), model);
        let chat = self.chat.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = chat.store_answer(&turn, answered).await {
                    tracing::warn!(error = ?e, "cannot store an interrupted answer");
                }
            });
        }
    }
}

fn finish_name(r: &FinishReason) -> String {
    match r {
        FinishReason::Stop => "stop".into(),
        FinishReason::Length => "length".into(),
        FinishReason::ToolCalls => "tool_calls".into(),
        FinishReason::ContentFilter => "content_filter".into(),
        FinishReason::Other(o) => o.clone(),
    }
}

fn rules(findings: &[Finding]) -> String {
    findings
        .iter()
        .map(|f| f.rule)
        .collect::<Vec<_>>()
        .join(", ")
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

fn title(t: &str) -> Result<String> {
    let t = t.trim();
    if t.is_empty() {
        return Err(Error::invalid("title must not be empty"));
    }
    if t.chars().count() > MAX_TITLE_CHARS {
        return Err(Error::invalid(format!(
            "title is at most {MAX_TITLE_CHARS} characters"
        )));
    }
    Ok(t.to_owned())
}

fn system_prompt(s: Option<String>) -> Result<Option<String>> {
    let s = non_empty(s);
    if s.as_ref()
        .is_some_and(|s| s.chars().count() > MAX_SYSTEM_PROMPT_CHARS)
    {
        return Err(Error::invalid(format!(
            "system_prompt is at most {MAX_SYSTEM_PROMPT_CHARS} characters"
        )));
    }
    Ok(s)
}

/// A title from the first question: its first line, cut at a word near 60 characters.
fn title_from(question: &str) -> String {
    let line = question
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(UNTITLED)
        .trim();
    if line.chars().count() <= 60 {
        return line.to_owned();
    }
    let cut: String = line.chars().take(60).collect();
    let cut = match cut.rfind(' ') {
        Some(i) if i > 30 => &cut[..i],
        _ => cut.as_str(),
    };
    format!("{}…", cut.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_come_from_the_first_line() {
        assert_eq!(title_from("\n  What is X?\nmore"), "What is X?");
        let long =
            "How do I configure the nightly backups of the PostgreSQL database on the server";
        let t = title_from(long);
        assert!(t.ends_with('…') && t.chars().count() <= 61, "{t}");
        assert!(!t.contains("server"));
        assert_eq!(title_from(&"é".repeat(100)).chars().count(), 61);
    }

    #[test]
    fn screening_modes_parse() {
        assert_eq!(
            "block".parse::<ScreeningMode>().unwrap(),
            ScreeningMode::Block
        );
        assert!("loud".parse::<ScreeningMode>().is_err());
    }
}
