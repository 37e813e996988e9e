//! HTTP plumbing shared by all providers: timeouts, retries, circuit breaking, error mapping and
//! the streaming state machine.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http::header::{CONTENT_LENGTH, HeaderMap};
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Limited};
use tokio::time::{Instant, timeout_at};

use crate::breaker::{BreakerState, CircuitBreaker, Permit};
use crate::client::{Endpoint, HttpClient, Response, SendError, error_chain};
use crate::error::{ProviderError, Secret, TimeoutPhase};
use crate::options::ProviderOptions;
use crate::provider::ClientConfig;
use crate::types::{ChatResponse, ResponseBuilder, StreamEvent};

/// Longest prefix of a non-JSON error body kept in an error message.
const MAX_RAW_ERROR: usize = 512;

/// Most of an error response's body read to find the upstream's message.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Turns a provider's wire bytes into normalized events.
pub(crate) trait Decoder: Send + Unpin + 'static {
    /// Consumes one chunk of the response body.
    fn feed(&mut self, chunk: &[u8], out: &mut VecDeque<StreamEvent>) -> Result<(), ProviderError>;
    /// Called once at end of body; may flush buffered events.
    fn finish(&mut self, out: &mut VecDeque<StreamEvent>) -> Result<(), ProviderError>;
}

/// Extracts `(message, kind)` from a provider's documented error body.
pub(crate) type ErrorBodyParser = fn(&[u8]) -> Option<(String, Option<String>)>;

/// One HTTP request to make (possibly several times).
#[derive(Debug, Clone)]
pub(crate) struct RequestSpec {
    pub method: Method,
    /// Resolved once, when the client is made: parsing a URL for every request showed in
    /// profiles.
    pub endpoint: Endpoint,
    /// A JSON body, sent with `content-type: application/json`.
    pub body: Option<Bytes>,
}

impl RequestSpec {
    pub(crate) fn get(endpoint: Endpoint) -> Self {
        Self {
            method: Method::GET,
            endpoint,
            body: None,
        }
    }

    pub(crate) fn post_json(endpoint: &Endpoint, body: &impl serde::Serialize) -> Self {
        Self {
            method: Method::POST,
            endpoint: endpoint.clone(),
            // Serializing our own request types cannot fail: they contain only strings,
            // numbers and `serde_json::Value`s.
            body: Some(Bytes::from({
                let mut json = Vec::with_capacity(512);
                serde_json::to_writer(&mut json, body).expect("request serializes to JSON");
                json
            })),
        }
    }
}

/// Shared HTTP client state of one provider instance.
pub(crate) struct Transport {
    name: Arc<str>,
    http: HttpClient,
    options: ProviderOptions,
    breaker: Arc<CircuitBreaker>,
    secret: Option<Secret>,
    parse_error: ErrorBodyParser,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("name", &self.name)
            .field("options", &self.options)
            .field("breaker", &self.breaker.state())
            .field("api_key", &self.secret)
            .finish_non_exhaustive()
    }
}

impl Transport {
    /// Builds a client with `config`'s options and proxy. `headers` are sent with every
    /// request; values derived from `secret` must already be marked sensitive.
    pub(crate) fn new(
        name: &str,
        config: &ClientConfig,
        secret: Option<Secret>,
        headers: HeaderMap,
        parse_error: ErrorBodyParser,
    ) -> Result<Self, ProviderError> {
        let options = config.options.clone();
        let http = HttpClient::new(options.connect_timeout, &config.proxy, headers).map_err(
            |message| ProviderError::Config {
                provider: name.to_owned(),
                message,
            },
        )?;
        Ok(Self {
            name: Arc::from(name),
            http,
            breaker: CircuitBreaker::new(options.breaker_threshold, options.breaker_cooldown),
            options,
            secret,
            parse_error,
        })
    }

    /// An endpoint of this provider; `url` is made from its validated base URL.
    pub(crate) fn endpoint(&self, url: &str) -> Result<Endpoint, ProviderError> {
        self.http
            .endpoint(url)
            .map_err(|message| ProviderError::Config {
                provider: self.name.to_string(),
                message,
            })
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    /// Makes a non-streaming call: retries transient failures, then hands the body of the
    /// successful response to `parse`. The whole exchange (per attempt) is bounded by
    /// `first_token_timeout`, the body by `max_response_bytes`.
    pub(crate) async fn call<T>(
        &self,
        spec: &RequestSpec,
        parse: impl Fn(&[u8]) -> Result<T, ProviderError>,
    ) -> Result<T, ProviderError> {
        self.call_timed(spec, parse).await.map(|(value, _)| value)
    }

    /// [`Transport::call`], also returning how long it waited on the upstream: from sending
    /// the first attempt until the successful response's body had arrived (retries and their
    /// backoff included; parsing not).
    pub(crate) async fn call_timed<T>(
        &self,
        spec: &RequestSpec,
        parse: impl Fn(&[u8]) -> Result<T, ProviderError>,
    ) -> Result<(T, Duration), ProviderError> {
        let permit = self.acquire()?;
        let started = Instant::now();
        let parse = &parse;
        let result = self
            .with_retries(|| async move {
                let deadline = Instant::now() + self.options.first_token_timeout;
                let response = self.send(spec, deadline).await?;
                let body = timeout_at(deadline, self.read_body(response))
                    .await
                    .unwrap_or_else(|_| Err(self.timeout(TimeoutPhase::FirstToken)))?;
                let waited = started.elapsed();
                // Inside the attempt: an error the upstream reports in a 2xx body may be
                // transient too.
                parse(&body).map(|value| (value, waited))
            })
            .await;
        settle(permit, &result);
        result
    }

    /// A whole chat answer, with [`ChatResponse::upstream_wait`] filled in.
    pub(crate) async fn call_chat(
        &self,
        spec: &RequestSpec,
        parse: impl Fn(&[u8]) -> Result<ChatResponse, ProviderError>,
    ) -> Result<ChatResponse, ProviderError> {
        let (mut response, waited) = self.call_timed(spec, parse).await?;
        response.upstream_wait = waited;
        Ok(response)
    }

    /// A successful response's whole body, refused past `max_response_bytes`.
    async fn read_body(&self, response: Response) -> Result<Vec<u8>, ProviderError> {
        let max = self.options.max_response_bytes;
        let too_large = || {
            crate::error::protocol(
                &self.name,
                format!("the response is larger than {max} bytes (max_response_bytes)"),
            )
        };
        let declared = content_length(response.headers()).unwrap_or(0);
        if declared > max as u64 {
            return Err(too_large());
        }
        // Preallocate what the upstream declares (bounded above), not more.
        let mut body = Vec::with_capacity(declared as usize);
        let mut incoming = response.into_body();
        loop {
            match incoming.frame().await {
                Some(Ok(frame)) => {
                    let Ok(chunk) = frame.into_data() else {
                        continue; // trailers
                    };
                    if body.len() + chunk.len() > max {
                        return Err(too_large());
                    }
                    body.extend_from_slice(&chunk);
                }
                None => return Ok(body),
                Some(Err(e)) => {
                    return Err(ProviderError::Connect {
                        provider: self.name.to_string(),
                        message: format!(
                            "connection lost while reading the response: {}",
                            self.describe(&e)
                        ),
                    });
                }
            }
        }
    }

    /// Opens a stream: retries transient failures until the first normalized event is ready
    /// (bounded by `first_token_timeout` per attempt), then never again.
    pub(crate) async fn stream<D: Decoder>(
        &self,
        spec: &RequestSpec,
        model: &str,
        new_decoder: impl Fn() -> D,
    ) -> Result<ChatStream, ProviderError> {
        let permit = self.acquire()?;
        let started = Instant::now();
        let new_decoder = &new_decoder;
        let result = self
            .with_retries(|| async move {
                let deadline = Instant::now() + self.options.first_token_timeout;
                let response = self.send(spec, deadline).await?;
                let mut state = StreamState::new(
                    Arc::clone(&self.name),
                    response.into_body(),
                    new_decoder(),
                    self.options.clone(),
                );
                state.fill(Some(deadline)).await?;
                Ok(state)
            })
            .await;
        match result {
            Ok(mut state) => {
                state.permit = Some(permit);
                let first = state.first_chunk_at.unwrap_or_else(Instant::now);
                let mut stream = ChatStream::new(state, Arc::clone(&self.name), model);
                stream.upstream_wait = first.saturating_duration_since(started);
                Ok(stream)
            }
            Err(e) => {
                settle(permit, &Err::<(), _>(e.clone()));
                Err(e)
            }
        }
    }

    fn acquire(&self) -> Result<Permit, ProviderError> {
        self.breaker
            .acquire()
            .map_err(|refused| ProviderError::CircuitOpen {
                provider: self.name.to_string(),
                failures: refused.failures,
                retry_in: refused.retry_in,
            })
    }

    async fn with_retries<T, F, Fut>(&self, mut attempt: F) -> Result<T, ProviderError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        let mut retry = 0;
        loop {
            match attempt().await {
                Ok(value) => return Ok(value),
                Err(e) if e.is_retryable() && retry < self.options.max_retries => {
                    let delay = match e.retry_after() {
                        // The upstream wants a longer pause than we are willing to wait:
                        // hand its answer (with `retry_after`) to the caller instead.
                        Some(wait) if wait > self.options.max_backoff => return Err(e),
                        Some(wait) => wait,
                        None => self.options.backoff(retry),
                    };
                    retry += 1;
                    tokio::time::sleep(delay).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends the request and returns the response if its status is 2xx.
    async fn send(&self, spec: &RequestSpec, deadline: Instant) -> Result<Response, ProviderError> {
        let sent = self
            .http
            .send(spec.method.clone(), &spec.endpoint, spec.body.clone());
        let response = match timeout_at(deadline, sent).await {
            Err(_) => return Err(self.timeout(TimeoutPhase::FirstToken)),
            Ok(Err(e)) => return Err(self.transport_error(e)),
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let retry_after = parse_retry_after(response.headers());
        if status.is_redirection() {
            let to = response
                .headers()
                .get(http::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("nowhere");
            return Err(ProviderError::Http {
                provider: self.name.to_string(),
                status: status.as_u16(),
                kind: None,
                message: self.scrub(&format!(
                    "the provider redirects {} to {to}; redirects are not followed (they would \
                     carry the API key elsewhere): set the base URL to where it points",
                    spec.endpoint.uri()
                )),
                retry_after: None,
            });
        }
        // Best effort: the status alone is still a useful error if the body never arrives.
        let body = timeout_at(
            deadline,
            Limited::new(response.into_body(), MAX_ERROR_BODY).collect(),
        )
        .await
        .ok()
        .and_then(Result::ok)
        .map(|collected| collected.to_bytes())
        .unwrap_or_default();
        Err(self.status_error(status, retry_after, &body))
    }

    fn status_error(
        &self,
        status: StatusCode,
        retry_after: Option<Duration>,
        body: &[u8],
    ) -> ProviderError {
        let (message, kind) = (self.parse_error)(body).unwrap_or_else(|| {
            let raw = String::from_utf8_lossy(body);
            let raw = raw.trim();
            let message = if raw.is_empty() {
                status
                    .canonical_reason()
                    .unwrap_or("no error message")
                    .to_owned()
            } else {
                truncate(raw, MAX_RAW_ERROR)
            };
            (message, None)
        });
        let message = self.scrub(&message);
        let provider = self.name.to_string();
        if status == StatusCode::TOO_MANY_REQUESTS {
            ProviderError::RateLimited {
                provider,
                retry_after,
                message,
            }
        } else {
            ProviderError::Http {
                provider,
                status: status.as_u16(),
                kind,
                message,
                retry_after,
            }
        }
    }

    fn transport_error(&self, e: SendError) -> ProviderError {
        let provider = self.name.to_string();
        match e {
            SendError::Connect {
                timed_out: true, ..
            } => ProviderError::Timeout {
                provider,
                phase: TimeoutPhase::Connect,
                after: self.options.connect_timeout,
            },
            SendError::Connect { message, .. } | SendError::Exchange(message) => {
                ProviderError::Connect {
                    provider,
                    message: self.scrub(&message),
                }
            }
        }
    }

    fn timeout(&self, phase: TimeoutPhase) -> ProviderError {
        timeout_error(&self.name, phase, &self.options)
    }

    /// The error and its causes on one line, without secrets.
    fn describe(&self, e: &(dyn std::error::Error + 'static)) -> String {
        self.scrub(&error_chain(e))
    }

    fn scrub(&self, text: &str) -> String {
        match &self.secret {
            Some(secret) => secret.scrub(text),
            None => text.to_owned(),
        }
    }
}

fn settle<T>(permit: Permit, result: &Result<T, ProviderError>) {
    match result {
        Err(e) if e.counts_against_breaker() => permit.failure(),
        _ => permit.success(),
    }
}

fn timeout_error(name: &str, phase: TimeoutPhase, options: &ProviderOptions) -> ProviderError {
    let after = match phase {
        TimeoutPhase::Connect => options.connect_timeout,
        TimeoutPhase::FirstToken => options.first_token_timeout,
        TimeoutPhase::Idle => options.idle_timeout,
    };
    ProviderError::Timeout {
        provider: name.to_owned(),
        phase,
        after,
    }
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Parses `retry-after-ms` (OpenAI) or `Retry-After` in seconds. HTTP-date values are ignored.
pub(crate) fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0)
    };
    if let Some(ms) = get("retry-after-ms") {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    get("retry-after").map(|secs| Duration::from_secs_f64(secs.min(86_400.0)))
}

/// The events a stream's queue has room for from the start: a read from a fast upstream
/// carries a few dozen (it was grown three or four times per stream from empty).
const QUEUE_ROOM: usize = 32;

/// The live half of a streaming call, reading body `B`: a [`Stream`] of its events, polled in
/// place. (Written as an `unfold` it moved the whole state into a new future and back out for
/// every event: three copies of a few hundred bytes per event, the largest share of a
/// stream's `memcpy` in profiles.)
struct StreamState<D, B = hyper::body::Incoming> {
    name: Arc<str>,
    body: B,
    decoder: D,
    queue: VecDeque<StreamEvent>,
    eof: bool,
    finished: bool,
    /// A decode error found after some events of the same chunk; reported once they are out.
    pending_error: Option<ProviderError>,
    options: ProviderOptions,
    permit: Option<Permit>,
    /// When the chunk that completed the first event arrived.
    first_chunk_at: Option<Instant>,
    /// The deadline of the read under way, made the first time a read has to wait and reset
    /// for later ones (one timer per stream, none for reads that find data ready).
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// A read is waiting and `timer` is set for it.
    waiting: bool,
}

impl<D, B> StreamState<D, B>
where
    D: Decoder,
    B: hyper::body::Body<Data = Bytes> + Unpin + Send + 'static,
    B::Error: std::error::Error + 'static,
{
    fn new(name: Arc<str>, body: B, decoder: D, options: ProviderOptions) -> Self {
        StreamState {
            name,
            body,
            decoder,
            queue: VecDeque::with_capacity(QUEUE_ROOM),
            eof: false,
            finished: false,
            pending_error: None,
            options,
            permit: None,
            first_chunk_at: None,
            timer: None,
            waiting: false,
        }
    }

    /// Reads until at least one event is queued. With a `deadline` (first-token phase) the
    /// whole wait is bounded by it; otherwise each chunk read is bounded by the idle timeout,
    /// counted from when that read began.
    fn poll_fill(
        &mut self,
        cx: &mut Context<'_>,
        deadline: Option<Instant>,
    ) -> Poll<Result<(), ProviderError>> {
        while self.queue.is_empty() {
            if let Some(e) = self.pending_error.take() {
                return Poll::Ready(Err(e));
            }
            if self.eof {
                return Poll::Ready(Err(crate::error::protocol(
                    &self.name,
                    "stream ended before its terminal event (connection closed early)",
                )));
            }
            let decoded = match Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Pending => return self.poll_timer(cx, deadline),
                Poll::Ready(Some(Ok(frame))) => {
                    self.waiting = false;
                    let Ok(chunk) = frame.into_data() else {
                        continue; // trailers
                    };
                    if deadline.is_some() {
                        self.first_chunk_at = Some(Instant::now());
                    }
                    self.decoder.feed(&chunk, &mut self.queue)
                }
                Poll::Ready(Some(Err(e))) => {
                    return Poll::Ready(Err(crate::error::protocol(
                        &self.name,
                        format!("stream interrupted: {}", error_chain(&e)),
                    )));
                }
                Poll::Ready(None) => {
                    self.waiting = false;
                    self.eof = true;
                    self.decoder.finish(&mut self.queue)
                }
            };
            if let Err(e) = decoded {
                if self.queue.is_empty() {
                    return Poll::Ready(Err(e));
                }
                // Deliver the events decoded before the bad input first.
                self.pending_error = Some(e);
            }
        }
        Poll::Ready(Ok(()))
    }

    /// A read is waiting: sets its deadline if it has just begun, and fails it once that has
    /// passed.
    fn poll_timer(
        &mut self,
        cx: &mut Context<'_>,
        deadline: Option<Instant>,
    ) -> Poll<Result<(), ProviderError>> {
        let phase = match deadline {
            Some(_) => TimeoutPhase::FirstToken,
            None => TimeoutPhase::Idle,
        };
        // The clock is read once per read that waits, not on every poll while it waits.
        let idle = self.options.idle_timeout;
        let at = || deadline.unwrap_or_else(|| Instant::now() + idle);
        let timer = match &mut self.timer {
            Some(timer) if self.waiting => timer,
            Some(timer) => {
                timer.as_mut().reset(at());
                timer
            }
            None => self.timer.insert(Box::pin(tokio::time::sleep_until(at()))),
        };
        self.waiting = true;
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(timeout_error(&self.name, phase, &self.options))),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Reads until at least one event is queued; see [`Self::poll_fill`].
    async fn fill(&mut self, deadline: Option<Instant>) -> Result<(), ProviderError> {
        std::future::poll_fn(|cx| self.poll_fill(cx, deadline)).await
    }
}

impl<D, B> Stream for StreamState<D, B>
where
    D: Decoder,
    B: hyper::body::Body<Data = Bytes> + Unpin + Send + 'static,
    B::Error: std::error::Error + 'static,
{
    type Item = Result<StreamEvent, ProviderError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.finished {
            return Poll::Ready(None);
        }
        if let Err(e) = std::task::ready!(this.poll_fill(cx, None)) {
            this.finished = true;
            if let Some(permit) = this.permit.take() {
                settle(permit, &Err::<(), _>(e.clone()));
            }
            return Poll::Ready(Some(Err(e)));
        }
        let Some(event) = this.queue.pop_front() else {
            return Poll::Ready(None);
        };
        if matches!(event, StreamEvent::Done { .. }) {
            this.finished = true;
            this.queue.clear();
            if let Some(permit) = this.permit.take() {
                permit.success();
            }
        }
        Poll::Ready(Some(Ok(event)))
    }
}

/// A stream of normalized events from one chat completion.
///
/// Yields `Delta`/`ToolCall` events, then `Usage` (when reported) and a final `Done`; or an
/// error, after which it ends. Dropping it closes the upstream connection.
pub struct ChatStream {
    inner: Pin<Box<dyn Stream<Item = Result<StreamEvent, ProviderError>> + Send>>,
    provider: Arc<str>,
    model: String,
    upstream_wait: Duration,
}

impl ChatStream {
    fn new<D, B>(state: StreamState<D, B>, provider: Arc<str>, model: &str) -> Self
    where
        D: Decoder,
        B: hyper::body::Body<Data = Bytes> + Unpin + Send + 'static,
        B::Error: std::error::Error + 'static,
    {
        Self {
            inner: Box::pin(state),
            provider,
            model: model.to_owned(),
            upstream_wait: Duration::ZERO,
        }
    }

    /// How long opening the stream waited on the upstream: from sending the first attempt
    /// until the bytes completing the first event arrived (retries and their backoff
    /// included; decoding not).
    pub fn upstream_wait(&self) -> Duration {
        self.upstream_wait
    }

    /// Name of the provider instance producing this stream.
    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// Consumes the stream into a complete response.
    pub async fn collect_response(mut self) -> Result<ChatResponse, ProviderError> {
        let mut builder = ResponseBuilder::default();
        while let Some(event) = self.next().await {
            builder.push(event?);
        }
        if !builder.is_done() {
            return Err(crate::error::protocol(
                &self.provider,
                "stream ended without a terminal event",
            ));
        }
        Ok(builder.finish(self.model))
    }
}

impl fmt::Debug for ChatStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatStream")
            .field("provider", &self.provider)
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

impl Stream for ChatStream {
    type Item = Result<StreamEvent, ProviderError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::HeaderValue;

    #[test]
    fn retry_after_parsing() {
        let mut h = HeaderMap::new();
        assert_eq!(parse_retry_after(&h), None);
        h.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(parse_retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after-ms", HeaderValue::from_static("150"));
        assert_eq!(parse_retry_after(&h), Some(Duration::from_millis(150)));
        let mut h = HeaderMap::new();
        h.insert(
            "retry-after",
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(parse_retry_after(&h), None);
    }

    /// `a` → a delta, `x` → a protocol error, `d` → done.
    struct ByteDecoder;

    impl Decoder for ByteDecoder {
        fn feed(
            &mut self,
            chunk: &[u8],
            out: &mut VecDeque<StreamEvent>,
        ) -> Result<(), ProviderError> {
            for b in chunk {
                match b {
                    b'a' => out.push_back(StreamEvent::Delta { text: "a".into() }),
                    b'd' => out.push_back(StreamEvent::Done {
                        finish_reason: crate::types::FinishReason::Stop,
                    }),
                    _ => return Err(crate::error::protocol("t", "bad byte")),
                }
            }
            Ok(())
        }

        fn finish(&mut self, _: &mut VecDeque<StreamEvent>) -> Result<(), ProviderError> {
            Ok(())
        }
    }

    async fn run(chunks: &[&'static [u8]]) -> Vec<Result<StreamEvent, ProviderError>> {
        let body = http_body_util::StreamBody::new(futures_util::stream::iter(
            chunks
                .iter()
                .map(|c| Ok(hyper::body::Frame::data(Bytes::from_static(c))))
                .collect::<Vec<Result<_, std::io::Error>>>(),
        ));
        let state = StreamState::new(
            Arc::from("t"),
            body,
            ByteDecoder,
            ProviderOptions::default(),
        );
        ChatStream::new(state, Arc::from("t"), "m")
            .collect::<Vec<_>>()
            .await
    }

    #[tokio::test]
    async fn events_before_a_decode_error_are_delivered_first() {
        let items = run(&[b"aax", b"ad"]).await;
        assert_eq!(items.len(), 3);
        assert!(items[0].is_ok() && items[1].is_ok());
        assert!(matches!(items[2], Err(ProviderError::Protocol { .. })));
    }

    #[tokio::test]
    async fn stream_ends_after_done_and_eof_without_done_is_an_error() {
        let items = run(&[b"a", b"dxxx"]).await;
        assert_eq!(items.len(), 2);
        assert!(items.iter().all(Result::is_ok));
        let items = run(&[b"a", b"a"]).await;
        assert_eq!(items.len(), 3);
        assert!(matches!(items[2], Err(ProviderError::Protocol { .. })));
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(truncate("ééé", 3), "é…");
    }
}
