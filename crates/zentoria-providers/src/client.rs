//! The HTTP client under every provider: hyper's pooled HTTP/1.1 client over TCP or rustls,
//! through an HTTP proxy when the environment (or the configuration) names one.
//!
//! hyper is used directly rather than through a higher-level client: each request is a fixed
//! endpoint with fixed headers, so everything such a client does per request (re-parsing the
//! URL for its redirect policy, a retry layer of its own, header merging) was measurable work
//! for nothing. Redirects are not followed: a provider API that answers 3xx is misconfigured,
//! and following it would re-send the API key and the body somewhere else.

use std::cell::RefCell;
use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http::header::{AUTHORIZATION, HOST, HeaderMap, HeaderValue, PROXY_AUTHORIZATION, USER_AGENT};
use http::{Method, Request, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use url::Url;

/// How a provider's requests reach it.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Proxy {
    /// Through the proxy the environment names for the URL, as curl reads it: `HTTPS_PROXY`,
    /// `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY` (upper or lower case), read when the client is
    /// made.
    #[default]
    Environment,
    /// Straight to the provider, whatever the environment says.
    Direct,
    /// Every request through this HTTP proxy: `http://[user:password@]host[:port]`. HTTPS
    /// endpoints are reached through a `CONNECT` tunnel.
    Url(String),
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Proxy::Environment => f.write_str("Environment"),
            Proxy::Direct => f.write_str("Direct"),
            // Without the credentials a proxy URL may hold.
            Proxy::Url(url) => match Url::parse(url.trim()) {
                Ok(mut url) => {
                    if url.password().is_some() {
                        let _ = url.set_password(Some("redacted"));
                    }
                    f.debug_tuple("Url").field(&url.as_str()).finish()
                }
                Err(_) => f.write_str("Url(<invalid>)"),
            },
        }
    }
}

/// A response whose body is still arriving.
pub(crate) type Response = http::Response<Incoming>;

/// Why a request could not be made.
#[derive(Debug)]
pub(crate) enum SendError {
    /// No connection could be made; `timed_out` when the connect timeout ran out.
    Connect { message: String, timed_out: bool },
    /// The connection broke while sending or before the response head arrived.
    Exchange(String),
}

/// One fixed request target: the URI and the headers every request to it carries. Shared:
/// every request to it holds a clone, which is a reference count (a deep copy of its URIs and
/// headers cost about 850 instructions a request in profiles).
#[derive(Debug, Clone)]
pub(crate) struct Endpoint(Arc<EndpointParts>);

#[derive(Debug)]
pub(crate) struct EndpointParts {
    uri: Uri,
    headers: HeaderMap,
    /// `headers` and `content-type: application/json`, for requests with a body: built once,
    /// so that a request copies them instead of growing a copy.
    json_headers: HeaderMap,
    /// Where its connections lead, `scheme://authority`: requests to endpoints with the same
    /// destination share connections.
    dest: Arc<str>,
    /// The request target as sent: the whole URI through a forwarding proxy, else its path
    /// and query.
    target: Uri,
}

impl std::ops::Deref for Endpoint {
    type Target = EndpointParts;

    fn deref(&self) -> &EndpointParts {
        &self.0
    }
}

impl EndpointParts {
    /// The endpoint's URL as configured (without credentials), for messages.
    pub(crate) fn uri(&self) -> &Uri {
        &self.uri
    }
}

/// The pooled client of one provider instance.
///
/// Its connections are pooled per thread: each connection runs as a task on the runtime that
/// opened it, so a request on another thread would wake that one twice (to write, and to hand
/// back the response). With the server's thread per core, a request and its upstream
/// connection stay on one thread.
///
/// The pool is kept here rather than by hyper-util's client, whose pool hashed the
/// destination on every checkout and return and spawned a task per request to put the
/// connection back once its body was read: a connection goes back to the pool as soon as its
/// response head has arrived, and a checkout takes the first one that is ready again.
pub(crate) struct HttpClient {
    connector: HttpsConnector<Connector>,
    /// Identifies this client's pools in [`POOLS`]; they go when it does.
    token: Arc<()>,
    proxy: Option<Arc<Matcher>>,
    headers: HeaderMap,
}

/// A connection open to an endpoint's destination, kept for its next request.
struct Pooled {
    dest: Arc<str>,
    sender: http1::SendRequest<Full<Bytes>>,
    /// When it last started a request; unused for [`IDLE_TIMEOUT`], it is closed.
    used_at: Instant,
}

/// How long a pooled connection may go unused before it is closed rather than reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// The most connections one thread keeps per client; past it, a returned one is closed.
const MAX_POOLED: usize = 512;

thread_local! {
    /// Each thread's connections, by the [`HttpClient::token`] of the client they belong to.
    static POOLS: RefCell<Vec<(Weak<()>, Vec<Pooled>)>> = const { RefCell::new(Vec::new()) };
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("proxied", &self.proxy.is_some())
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    /// A client sending `headers` (plus a user agent) with every request. Values derived from
    /// secrets must already be marked sensitive.
    pub(crate) fn new(
        connect_timeout: Duration,
        proxy: &Proxy,
        mut headers: HeaderMap,
    ) -> Result<Self, String> {
        let proxy = match proxy {
            Proxy::Environment => Some(Matcher::from_env()),
            Proxy::Direct => None,
            Proxy::Url(url) => {
                let url = url.trim();
                check_proxy_url(url)?;
                Some(Matcher::builder().all(url.to_owned()).build())
            }
        }
        .map(Arc::new);
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(connect_timeout));
        let connector = Connector {
            tcp,
            proxy: proxy.clone(),
        };
        let tls = HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .map_err(|e| format!("cannot set up TLS: {e}"))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("zentoria-providers/", env!("CARGO_PKG_VERSION"))),
        );
        Ok(Self {
            connector: tls,
            token: Arc::new(()),
            proxy,
            headers,
        })
    }

    /// A ready connection to `dest` from this thread's pool, if it has one, and whether it
    /// has busy ones (their last response still being read, or just finished and not yet
    /// marked ready by their task). Connections that closed or sat unused too long are
    /// dropped on the way.
    fn checkout(&self, dest: &str) -> (Option<Pooled>, bool) {
        let now = Instant::now();
        POOLS.with_borrow_mut(|pools| {
            let mine = Arc::as_ptr(&self.token);
            let Some((_, pool)) = pools.iter_mut().find(|(t, _)| t.as_ptr() == mine) else {
                return (None, false);
            };
            let (mut found, mut busy) = (None, false);
            let mut i = 0;
            while i < pool.len() {
                let c = &pool[i];
                if c.sender.is_closed() || now.duration_since(c.used_at) > IDLE_TIMEOUT {
                    pool.swap_remove(i);
                    continue;
                }
                if found.is_none() && *c.dest == *dest {
                    if c.sender.is_ready() {
                        found = Some(pool.swap_remove(i));
                        continue;
                    }
                    busy = true;
                }
                i += 1;
            }
            (found, busy)
        })
    }

    /// Puts a connection (its response head received) back in this thread's pool.
    fn checkin(&self, conn: Pooled) {
        POOLS.with_borrow_mut(|pools| {
            let mine = Arc::as_ptr(&self.token);
            if let Some((_, pool)) = pools.iter_mut().find(|(t, _)| t.as_ptr() == mine) {
                if pool.len() < MAX_POOLED {
                    pool.push(conn);
                }
                return;
            }
            pools.retain(|(token, _)| token.strong_count() > 0);
            pools.push((Arc::downgrade(&self.token), vec![conn]));
        });
    }

    /// Opens a connection to `endpoint`'s destination (through its proxy, with TLS for
    /// https) and starts it as a task on this thread's runtime.
    async fn connect(&self, endpoint: &Endpoint) -> Result<Pooled, SendError> {
        use tower_service::Service as _;
        // Named in the error: "connection refused" alone does not say which address refused.
        // (`dest` carries no credentials; they were taken out of the URL.)
        let connect_error = |e: BoxError| {
            let e: &(dyn StdError + 'static) = &*e;
            SendError::Connect {
                message: format!("cannot connect to {}: {}", endpoint.dest, error_chain(e)),
                timed_out: source_chain(e).any(|cause| {
                    cause
                        .downcast_ref::<io::Error>()
                        .is_some_and(|io| io.kind() == io::ErrorKind::TimedOut)
                }),
            }
        };
        let mut connector = self.connector.clone();
        std::future::poll_fn(|cx| connector.poll_ready(cx))
            .await
            .map_err(connect_error)?;
        let io = connector
            .call(endpoint.uri.clone())
            .await
            .map_err(connect_error)?;
        let (mut sender, connection) =
            http1::handshake(io).await.map_err(|e| SendError::Connect {
                message: error_chain(&e),
                timed_out: false,
            })?;
        // Its failures reach the request being sent on it, through the sender.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        sender
            .ready()
            .await
            .map_err(|e| SendError::Exchange(error_chain(&e)))?;
        Ok(Pooled {
            dest: endpoint.dest.clone(),
            sender,
            used_at: Instant::now(),
        })
    }

    /// Sends `request` on a pooled connection when one is ready, else on a new one. A pooled
    /// connection that turns out closed before the request left is given up for the next
    /// (the server may close an idle connection at any time); once a request was sent, its
    /// failure is the answer.
    async fn exchange(
        &self,
        endpoint: &Endpoint,
        mut request: Request<Full<Bytes>>,
    ) -> Result<Response, SendError> {
        let (mut fresh, mut yielded) = (false, false);
        loop {
            let mut conn = match self.checkout(&endpoint.dest) {
                (Some(conn), _) => conn,
                // A stream dropped at its terminal event leaves its connection to be marked
                // ready by the connection's task, which has been woken: let it run once
                // rather than open another connection.
                (None, true) if !yielded => {
                    yielded = true;
                    tokio::task::yield_now().await;
                    continue;
                }
                (None, _) => {
                    fresh = true;
                    // Boxed: connecting (DNS, TCP, TLS) is the rare path, and its future, held
                    // inline, made every request's future kilobytes larger, which each layer
                    // above moved and copied.
                    Box::pin(self.connect(endpoint)).await?
                }
            };
            conn.used_at = Instant::now();
            match conn.sender.try_send_request(request).await {
                Ok(response) => {
                    self.checkin(conn);
                    return Ok(response);
                }
                Err(mut e) => match e.take_message() {
                    Some(unsent) if !fresh => request = unsent,
                    _ => return Err(SendError::Exchange(error_chain(e.error()))),
                },
            }
        }
    }

    /// Resolves `url` into an endpoint: its URI, its `Host` header (made once here rather than
    /// on every request), credentials in the URL as basic authentication, and the proxy's
    /// credentials when requests to it go through a forwarding proxy.
    pub(crate) fn endpoint(&self, url: &str) -> Result<Endpoint, String> {
        let mut parsed =
            Url::parse(url).map_err(|e| format!("invalid endpoint URL {url:?}: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!("endpoint URL {url:?} must use http or https"));
        }
        let mut headers = self.headers.clone();
        if !parsed.username().is_empty() || parsed.password().is_some() {
            let user = percent_decode(parsed.username());
            let password = parsed.password().map(percent_decode).unwrap_or_default();
            if !headers.contains_key(AUTHORIZATION) {
                headers.insert(AUTHORIZATION, basic_auth(&user, &password)?);
            }
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
        }
        let uri: Uri = parsed
            .as_str()
            .parse()
            .map_err(|e| format!("invalid endpoint URL {url:?}: {e}"))?;
        let authority = uri
            .authority()
            .ok_or_else(|| format!("endpoint URL {url:?} has no host"))?;
        let host = match (authority.port_u16(), uri.scheme_str()) {
            (Some(80), Some("http")) | (Some(443), Some("https")) | (None, _) => {
                authority.host().to_owned()
            }
            (Some(port), _) => format!("{}:{port}", authority.host()),
        };
        headers.insert(
            HOST,
            HeaderValue::from_str(&host).map_err(|e| format!("invalid host in {url:?}: {e}"))?,
        );
        let mut proxied = false;
        if let Some(via) = self.proxy.as_ref().and_then(|m| m.intercept(&uri)) {
            check_proxy_url(&via.uri().to_string())?;
            // Plain HTTP is forwarded by the proxy; HTTPS goes through a tunnel, end to end.
            proxied = uri.scheme_str() == Some("http");
            if proxied && let Some(auth) = via.basic_auth() {
                let mut auth = auth.clone();
                auth.set_sensitive(true);
                headers.insert(PROXY_AUTHORIZATION, auth);
            }
        }
        let dest = format!("{}://{}", uri.scheme_str().unwrap_or("http"), authority).into();
        let target = if proxied {
            uri.clone()
        } else {
            let path = uri.path_and_query().map_or("/", |pq| pq.as_str());
            Uri::try_from(path).map_err(|e| format!("invalid endpoint URL {url:?}: {e}"))?
        };
        let mut json_headers = headers.clone();
        json_headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Ok(Endpoint(Arc::new(EndpointParts {
            uri,
            headers,
            json_headers,
            dest,
            target,
        })))
    }

    /// Sends one request, with a JSON body when it has one, and waits for the response head.
    pub(crate) async fn send(
        &self,
        method: Method,
        endpoint: &Endpoint,
        json: Option<Bytes>,
    ) -> Result<Response, SendError> {
        let headers = match json {
            Some(_) => endpoint.json_headers.clone(),
            None => endpoint.headers.clone(),
        };
        let mut request = Request::new(Full::new(json.unwrap_or_default()));
        *request.method_mut() = method;
        *request.uri_mut() = endpoint.target.clone();
        *request.headers_mut() = headers;
        self.exchange(endpoint, request).await
    }
}

/// Refuses proxies this client cannot speak to.
fn check_proxy_url(url: &str) -> Result<(), String> {
    let parsed = Url::parse(url).map_err(|e| format!("invalid proxy URL: {e}"))?;
    match parsed.scheme() {
        "http" if parsed.host_str().is_some() => Ok(()),
        "http" => Err("the proxy URL has no host".into()),
        other => Err(format!(
            "proxies over `{other}` are not supported; use an http:// proxy (HTTPS endpoints \
             are still reached through it with a CONNECT tunnel)"
        )),
    }
}

fn basic_auth(user: &str, password: &str) -> Result<HeaderValue, String> {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let mut value = HeaderValue::from_str(&format!("Basic {token}"))
        .map_err(|_| "the credentials in the URL cannot be sent in a header".to_owned())?;
    value.set_sensitive(true);
    Ok(value)
}

/// `%XX` escapes undone, as URL credentials are written.
fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

fn source_chain<'a>(
    e: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(e), |e: &&'a (dyn StdError + 'static)| (*e).source())
}

/// An error and its causes on one line, each cause once.
pub(crate) fn error_chain(e: &(dyn StdError + 'static)) -> String {
    let mut text = e.to_string();
    for cause in source_chain(e).skip(1) {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
    }
    text
}

type BoxError = Box<dyn StdError + Send + Sync>;

/// Opens TCP connections: straight to the destination, or through the proxy that applies to it
/// (a `CONNECT` tunnel for HTTPS, a forwarding connection for plain HTTP).
#[derive(Clone)]
struct Connector {
    tcp: HttpConnector,
    proxy: Option<Arc<Matcher>>,
}

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let via = self.proxy.as_ref().and_then(|m| m.intercept(&dst));
        let mut tcp = self.tcp.clone();
        Box::pin(async move {
            match via {
                None => Ok(tcp.call(dst).await?),
                Some(via) if dst.scheme_str() == Some("https") => {
                    let mut tunnel = Tunnel::new(via.uri().clone(), tcp);
                    if let Some(auth) = via.basic_auth() {
                        tunnel = tunnel.with_auth(auth.clone());
                    }
                    let io = tunnel.call(dst).await.map_err(|e| {
                        format!("through the proxy {}: {}", via.uri(), error_chain(&e))
                    })?;
                    Ok(io)
                }
                Some(via) => {
                    let io = tcp
                        .call(via.uri().clone())
                        .await
                        .map_err(|e| format!("to the proxy {}: {}", via.uri(), error_chain(&e)))?;
                    Ok(io)
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(proxy: Proxy) -> HttpClient {
        HttpClient::new(Duration::from_secs(1), &proxy, HeaderMap::new()).unwrap()
    }

    #[tokio::test]
    async fn endpoints_carry_host_and_url_credentials() {
        let c = client(Proxy::Direct);
        let e = c.endpoint("http://127.0.0.1:8080/v1/chat").unwrap();
        assert_eq!(e.headers[HOST], "127.0.0.1:8080");
        assert_eq!(e.uri.to_string(), "http://127.0.0.1:8080/v1/chat");
        assert_eq!(e.target, "/v1/chat", "sent in origin form");
        assert_eq!(&*e.dest, "http://127.0.0.1:8080");
        let e = c.endpoint("https://api.example.com:443/v1").unwrap();
        assert_eq!(e.headers[HOST], "api.example.com");
        let e = c.endpoint("http://us%40r:p%3Ass@host/x").unwrap();
        // base64("us@r:p:ss")
        assert_eq!(e.headers[AUTHORIZATION], "Basic dXNAcjpwOnNz");
        assert!(e.headers[AUTHORIZATION].is_sensitive());
        assert_eq!(
            e.uri.to_string(),
            "http://host/x",
            "credentials leave the URI"
        );
        let e = c.endpoint("https://bücher.example/v1").unwrap();
        assert_eq!(e.headers[HOST], "xn--bcher-kva.example");
        assert!(c.endpoint("ftp://host/x").is_err());
        assert!(c.endpoint("not a url").is_err());
    }

    #[tokio::test]
    async fn proxies_are_checked_and_their_credentials_sent_to_forwarding_ones() {
        let c = client(Proxy::Url("http://u:p@127.0.0.1:3128".into()));
        let plain = c.endpoint("http://upstream.test/v1").unwrap();
        // base64("u:p")
        assert_eq!(plain.headers[PROXY_AUTHORIZATION], "Basic dTpw");
        assert_eq!(
            plain.target, "http://upstream.test/v1",
            "a forwarding proxy is sent the whole URL"
        );
        let tls = c.endpoint("https://upstream.test/v1").unwrap();
        assert!(
            !tls.headers.contains_key(PROXY_AUTHORIZATION),
            "a tunnel's credentials go in the CONNECT, not to the upstream"
        );
        assert_eq!(tls.target, "/v1", "through a tunnel, origin form");
        let err = HttpClient::new(
            Duration::from_secs(1),
            &Proxy::Url("socks5://127.0.0.1:1080".into()),
            HeaderMap::new(),
        )
        .unwrap_err();
        assert!(err.contains("socks5"), "{err}");
        assert!(
            HttpClient::new(
                Duration::from_secs(1),
                &Proxy::Url("nonsense".into()),
                HeaderMap::new()
            )
            .is_err()
        );
    }

    #[test]
    fn proxy_debug_hides_the_password() {
        let shown = format!("{:?}", Proxy::Url("http://user:hunter2@proxy:3128".into()));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("user:redacted@proxy"), "{shown}");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b%zz%4"), "a b%zz%4");
        assert_eq!(percent_decode("%C3%A9"), "é");
    }
}
