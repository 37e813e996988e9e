//! The middleware stack: request context (id, client address, log line), metrics, error
//! normalisation, and authentication with rate limiting.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use zentoria_core::Error;
use zentoria_platform::ratelimit::retry_after_secs;
use zentoria_platform::{ClientInfo, Principal};

use crate::AppState;
use crate::error::{ApiError, REQUEST_ID, error_response};

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// [`REQUEST_ID_HEADER`] as a header name, made once: a `&str` name is parsed again on every
/// use.
pub(crate) const REQUEST_ID_NAME: HeaderName = HeaderName::from_static(REQUEST_ID_HEADER);

/// When the request reached the server (before its body was read): handlers that report their
/// own time (the gateway's overhead) measure from here.
#[derive(Debug, Clone, Copy)]
pub struct Arrived(pub Instant);

/// The work done around every request, in one layer (each layer costs every request a boxed
/// future and clones of its service, which profiles showed to cost more than the work):
/// gives the request an id (kept from `X-Request-Id` when sane) and works out the client
/// address; after the route answers, rewrites a non-JSON error into the shared shape
/// ([`normalize_error`]), counts the request ([`count`]), adds the security headers
/// ([`secure`]) and logs one line.
pub async fn request_context(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().cloned();
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    around(&state, req, peer, route, |mut req, arrival| {
        // For the routes, which read them from the request.
        let client = ClientInfo {
            ip: arrival.ip.map(ip_text),
            user_agent: req
                .headers()
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(|s| truncated(s, 512).to_owned()),
            request_id: Some(crate::error::current_request_id()),
        };
        req.extensions_mut().insert(client);
        req.extensions_mut().insert(Arrived(arrival.started));
        next.run(req)
    })
    .await
}

/// What [`around`] learned of a request before handing it on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Arrival {
    /// When it reached the server.
    pub started: Instant,
    /// The client's address: the connection's, or the one a trusted proxy forwarded.
    pub ip: Option<IpAddr>,
}

/// [`request_context`] around `inner`, for a request from `peer` (the connection's address,
/// when known) to `route` (its template, for metrics). `inner` runs in the request id's scope
/// and is told when the request arrived and from where; it is up to `inner` to put them where
/// its handler looks (the router's routes read them from the request's extensions).
pub(crate) async fn around<F, Fut>(
    state: &AppState,
    req: Request,
    peer: Option<IpAddr>,
    route: &str,
    inner: F,
) -> Response
where
    F: FnOnce(Request, Arrival) -> Fut,
    Fut: Future<Output = Response>,
{
    let started = Instant::now();
    let id = req
        .headers()
        .get(REQUEST_ID_NAME)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map(str::to_owned)
        .unwrap_or_else(zentoria_core::id::new_id);
    let ip = peer.map(|p| client_ip(p, req.headers(), &state.settings.trusted_proxies));
    let arrival = Arrival { started, ip };
    let method = req.method().clone();
    // The URI as received shares its bytes: a clone is a reference count, not a copy.
    let uri = req.uri().clone();
    let path = uri.path();

    // Inside the id's scope: a rewritten error carries the request id too.
    let mut resp = REQUEST_ID
        .scope(id.clone(), async {
            let resp = inner(req, arrival).await;
            normalize_error(resp, &method, path).await
        })
        .await;

    let status = resp.status().as_u16();
    count(route, &method, status, started);
    let headers = resp.headers_mut();
    // Room for the security headers and the id at once rather than growing for them.
    headers.reserve(8);
    secure(headers, state.settings.hsts);
    if let Ok(v) = HeaderValue::from_str(&id) {
        headers.insert(REQUEST_ID_NAME, v);
    }
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    if status >= 500 {
        tracing::warn!(request_id = %id, %method, %path, status, ms, "request");
    } else {
        tracing::info!(request_id = %id, %method, %path, status, ms, "request");
    }
    resp
}

const CSP: HeaderValue = HeaderValue::from_static(
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
     script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
     form-action 'self'",
);

/// The security headers every answer carries (docs/SECURITY.md): a route may set its own
/// `Cache-Control` and `Content-Security-Policy`; the others are always ours.
fn secure(headers: &mut HeaderMap, hsts: bool) {
    if hsts {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(header::CONTENT_SECURITY_POLICY, CSP);
    }
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}

/// The longest start of `s` of at most `max` bytes that ends on a character boundary.
fn truncated(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `ip` as text, as `Display` writes it; IPv4 without the formatting machinery, which cost
/// more than a microsecond a request.
fn ip_text(ip: IpAddr) -> String {
    let IpAddr::V4(v4) = ip else {
        return ip.to_string();
    };
    let mut out = String::with_capacity(15);
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        if octet >= 100 {
            out.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            out.push(char::from(b'0' + octet / 10 % 10));
        }
        out.push(char::from(b'0' + octet % 10));
    }
    out
}

/// The client's address: the peer, unless the peer is a trusted proxy, in which case the
/// nearest untrusted address in `X-Forwarded-For`.
fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse::<IpAddr>().ok())
        .rev()
        .find(|ip| !trusted.contains(ip))
        .unwrap_or(peer)
}

/// Counts a request and its latency by route template, method and status.
fn count(route: &str, method: &Method, status: u16, started: Instant) {
    let series = crate::meters::request(route, method, status);
    series.requests.increment(1);
    series
        .duration_seconds
        .record(started.elapsed().as_secs_f64());
}

/// Rewrites an error response that is not already JSON (unknown routes, wrong methods,
/// framework rejections, timeouts, body limits) into the shared error shape.
async fn normalize_error(resp: Response, method: &Method, path: &str) -> Response {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .ok()
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .filter(|t| !t.is_empty());
    let (code, default) = match status {
        StatusCode::NOT_FOUND => ("not_found", format!("no route for {method} {path}")),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            format!("{method} is not allowed on {path}"),
        ),
        StatusCode::REQUEST_TIMEOUT => ("timeout", "the request took too long".to_owned()),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "payload_too_large",
            "the request body is larger than the configured limit".to_owned(),
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported_media_type",
            "send the body as application/json".to_owned(),
        ),
        StatusCode::UNPROCESSABLE_ENTITY => (
            "invalid_request",
            "the request body is not valid".to_owned(),
        ),
        StatusCode::TOO_MANY_REQUESTS => ("rate_limited", "too many requests".to_owned()),
        s if s.is_server_error() => (
            "internal_error",
            "an internal error occurred; quote the request id when reporting it".to_owned(),
        ),
        _ => ("bad_request", "the request is not valid".to_owned()),
    };
    // Framework rejections say precisely what was wrong with the request; server errors
    // never say anything internal.
    let message = match (status.is_client_error(), text) {
        (true, Some(t)) if status != StatusCode::NOT_FOUND => t,
        _ => default,
    };
    let mut out = error_response(status, code, message);
    // What the answer said besides its body: when to retry, what is allowed, how to
    // authenticate, and CORS (a browser may read the error only with those).
    for (name, value) in &parts.headers {
        if [
            header::RETRY_AFTER,
            header::ALLOW,
            header::WWW_AUTHENTICATE,
            header::VARY,
        ]
        .contains(name)
            || name.as_str().starts_with("access-control-")
        {
            out.headers_mut().append(name, value.clone());
        }
    }
    out
}

/// Resolves credentials when present (a bad one is refused here, at once) and applies the
/// rate limits per client address, per user and per key. Routes that need a principal get it
/// through [`crate::extract::Authed`], which refuses requests that arrive without one.
pub async fn authenticate(State(state): State<AppState>, req: Request, next: Next) -> Response {
    // Borrowed: a copy of the client's details cost three allocations a request.
    let ip = req
        .extensions()
        .get::<ClientInfo>()
        .and_then(|c| c.ip.as_deref());
    if let Some(refused) = address_refusal(&state, ip) {
        return refused;
    }
    authenticate_then(&state, req, |mut req, principal| {
        if let Some(principal) = principal {
            req.extensions_mut().insert(principal);
        }
        next.run(req)
    })
    .await
}

/// The per-address rate limit for a client at `ip` (in [`ip_text`]'s form): the refusal when
/// it is over the limit.
fn address_refusal(state: &AppState, ip: Option<&str>) -> Option<Response> {
    let wait = state.limiter.as_ref()?.acquire("ip", ip?).err()?;
    Some(rate_limited(wait, "ip"))
}

/// [`authenticate`] for a request from `ip`, handing the request and its principal (none when
/// it brought no credential) to `inner` directly rather than through the request's extensions.
pub(crate) async fn authenticate_at<F, Fut>(
    state: &AppState,
    req: Request,
    ip: Option<IpAddr>,
    inner: F,
) -> Response
where
    F: FnOnce(Request, Option<Arc<Principal>>) -> Fut,
    Fut: Future<Output = Response>,
{
    if state.limiter.is_some()
        && let Some(refused) = address_refusal(state, ip.map(ip_text).as_deref())
    {
        return refused;
    }
    authenticate_then(state, req, inner).await
}

/// Resolves the request's credential and applies the per-key and per-user limits, then
/// `inner` (the per-address limit is the caller's).
async fn authenticate_then<F, Fut>(state: &AppState, req: Request, inner: F) -> Response
where
    F: FnOnce(Request, Option<Arc<Principal>>) -> Fut,
    Fut: Future<Output = Response>,
{
    let credential = match credential_of(req.headers()) {
        Ok(None) if is_stream(req.uri().path()) => token_param(req.uri().query()),
        Ok(c) => c,
        Err(e) => return ApiError(e).into_response(),
    };
    if let Some(credential) = credential {
        match state.platform.authenticate(&credential).await {
            Ok(principal) => {
                if let Some(limiter) = &state.limiter {
                    let key_limit = match &principal.via {
                        zentoria_platform::Via::ApiKey { key_id } => {
                            limiter.acquire("key", key_id).map_err(|w| (w, "key"))
                        }
                        zentoria_platform::Via::Session { .. } | zentoria_platform::Via::Cli => {
                            Ok(())
                        }
                    };
                    let limited = key_limit.and_then(|()| {
                        limiter
                            .acquire("user", &principal.user_id)
                            .map_err(|w| (w, "user"))
                    });
                    if let Err((wait, which)) = limited {
                        return rate_limited(wait, which);
                    }
                }
                inner(req, Some(principal)).await
            }
            Err(e) => {
                metrics::counter!("zentoria_auth_failures_total", "reason" => "invalid")
                    .increment(1);
                ApiError(e).into_response()
            }
        }
    } else {
        inner(req, None).await
    }
}

fn rate_limited(wait: std::time::Duration, which: &'static str) -> Response {
    metrics::counter!("zentoria_rate_limited_total", "limit" => which).increment(1);
    ApiError(Error::RateLimited {
        retry_after_secs: retry_after_secs(wait),
    })
    .into_response()
}

/// Event streams, which browsers open without custom headers (EventSource, WebSocket).
fn is_stream(path: &str) -> bool {
    path == "/ws" || path == "/api/v1/events"
}

/// `?token=` for event streams. Only there: elsewhere a credential in a URL would end up in
/// browser history and proxy logs for no reason.
fn token_param(query: Option<&str>) -> Option<String> {
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "token")
        .map(|(_, v)| v.to_owned())
        .filter(|v| !v.is_empty())
}

/// The header an API key may come in, as a name made once.
pub(crate) const API_KEY_NAME: HeaderName = HeaderName::from_static("x-api-key");

/// The credential in `X-API-Key` or `Authorization: Bearer`, if any.
fn credential_of(headers: &HeaderMap) -> Result<Option<String>, Error> {
    if let Some(v) = headers.get(API_KEY_NAME) {
        let key = v
            .to_str()
            .map_err(|_| Error::unauthenticated("the X-API-Key header is not valid text"))?;
        return Ok(Some(key.trim().to_owned()));
    }
    if let Some(v) = headers.get(header::AUTHORIZATION) {
        let text = v
            .to_str()
            .map_err(|_| Error::unauthenticated("the Authorization header is not valid text"))?;
        let (scheme, token) = text.split_once(' ').unwrap_or((text, ""));
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(Error::unauthenticated(
                "use Authorization: Bearer <token or API key>",
            ));
        }
        return Ok(Some(token.trim().to_owned()));
    }
    Ok(None)
}

/// A JSON 500 for a handler that panicked, saying nothing internal.
pub fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response<Body> {
    tracing::error!("a request handler panicked");
    error_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        "an internal error occurred; quote the request id when reporting it",
    )
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use super::{ip_text, truncated};

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncated("curl/8.5", 512), "curl/8.5");
        assert_eq!(truncated("abcdef", 3), "abc");
        // "é" is two bytes: a cut inside it drops it whole.
        assert_eq!(truncated("aé", 2), "a");
        assert_eq!(truncated("aé", 3), "aé");
        assert_eq!(truncated("🎉🎉", 7), "🎉");
        let long = "x".repeat(600);
        assert_eq!(truncated(&long, 512).len(), 512);
    }

    #[test]
    fn ip_text_writes_what_display_writes() {
        for octet in 0..=255u8 {
            for at in 0..4 {
                let mut octets = [10, 200, 7, 99];
                octets[at] = octet;
                let ip = IpAddr::V4(Ipv4Addr::from(octets));
                assert_eq!(ip_text(ip), ip.to_string());
            }
        }
        for ip in [
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V4(Ipv4Addr::BROADCAST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
            "2001:db8::ff00:42:8329".parse().unwrap(),
            "::ffff:192.0.2.1".parse().unwrap(),
        ] {
            assert_eq!(ip_text(ip), ip.to_string());
        }
    }
}
