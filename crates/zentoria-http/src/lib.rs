//! The HTTP front end of Zentoria: axum routers, the middleware stack, extractors that make
//! authentication a matter of types, the OpenAPI document and its offline browser.
//!
//! Handlers are thin: they parse, call one domain function, and shape the answer. This crate
//! must never hold a business rule or talk SQL.

pub mod error;
pub mod extract;
mod meters;
pub mod middleware;
mod openapi;
mod routes;

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, header};
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::timeout::TimeoutLayer;
use zentoria_platform::Platform;
use zentoria_platform::ratelimit::RateLimiter;
use zentoria_store::Db;

pub use openapi::openapi_document;

/// What the HTTP layer needs to know from the configuration.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub rate_limit_per_minute: u32,
    pub rate_limit_burst: u32,
    pub body_limit_bytes: usize,
    pub request_timeout: Duration,
    pub cors_origins: Vec<String>,
    pub metrics_require_auth: bool,
    pub hsts: bool,
    pub trusted_proxies: Vec<IpAddr>,
}

/// Everything a handler can reach, shared: a clone is one reference count (axum clones the
/// state for every extractor and middleware of every request, so its size matters).
#[derive(Clone)]
pub struct AppState(Arc<Services>);

/// The services behind [`AppState`].
#[derive(Clone)]
pub struct Services {
    pub platform: Platform,
    pub jobs: zentoria_jobs::Jobs,
    pub knowledge: zentoria_knowledge::Knowledge,
    pub ai: zentoria_ai::Ai,
    pub chat: zentoria_ai::Chat,
    pub commands: zentoria_ai::Commands,
    pub events: zentoria_events::EventBus,
    pub db: Db,
    pub settings: Arc<HttpSettings>,
    pub metrics: PrometheusHandle,
    pub(crate) limiter: Option<Arc<RateLimiter>>,
}

impl AppState {
    pub fn new(
        platform: Platform,
        jobs: zentoria_jobs::Jobs,
        knowledge: zentoria_knowledge::Knowledge,
        events: zentoria_events::EventBus,
        db: Db,
        settings: HttpSettings,
    ) -> Self {
        let limiter = (settings.rate_limit_per_minute > 0).then(|| {
            Arc::new(RateLimiter::new(
                settings.rate_limit_per_minute,
                settings.rate_limit_burst.max(1),
            ))
        });
        let ai = zentoria_ai::Ai::new(zentoria_ai::AiSettings::default())
            .expect("no providers is a valid configuration");
        let chat = zentoria_ai::Chat::new(
            ai.clone(),
            db.clone(),
            knowledge.clone(),
            platform.audit().clone(),
            zentoria_ai::ChatSettings::default(),
        );
        let commands = zentoria_ai::Commands::new(
            ai.clone(),
            knowledge.clone(),
            platform.clone(),
            zentoria_ai::CommandSettings::default(),
        );
        AppState(Arc::new(Services {
            platform,
            jobs,
            knowledge,
            ai,
            chat,
            commands,
            events,
            db,
            settings: Arc::new(settings),
            metrics: metrics_handle(),
            limiter,
        }))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

impl AppState {
    /// The AI services (model providers and chat); without them, no provider is configured.
    pub fn with_chat(mut self, chat: zentoria_ai::Chat, commands: zentoria_ai::Commands) -> Self {
        let services = Arc::make_mut(&mut self.0);
        services.ai = chat.ai().clone();
        services.chat = chat;
        services.commands = commands;
        self
    }
}

/// The process-wide Prometheus recorder, installed on first use.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0,
                ])
                .and_then(|b| {
                    // The gateway's own time is tens of microseconds to a few milliseconds.
                    b.set_buckets_for_metric(
                        Matcher::Full(routes::gateway::OVERHEAD_METRIC.to_owned()),
                        &[
                            0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                            0.025, 0.1,
                        ],
                    )
                })
                .expect("static buckets are valid")
                .build_recorder();
            let handle = recorder.handle();
            // Only fails if another recorder is installed, in which case ours stays unused.
            let _ = metrics::set_global_recorder(recorder);
            let upkeep = handle.clone();
            keep_up("zentoria-metrics", METRICS_UPKEEP_EVERY, move || {
                upkeep.run_upkeep()
            });
            handle
        })
        .clone()
}

/// How often the recorder's histograms are drained when nothing scrapes `/metrics`.
const METRICS_UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs `upkeep` every `every` on a thread of its own for as long as the process lives.
///
/// The Prometheus recorder keeps every histogram sample in a bucket until it is drained, which
/// a scrape of `/metrics` does; a server that nobody scrapes (the default) would otherwise grow
/// by every request's samples, about 20 bytes a request. A thread rather than a task: the
/// recorder is the process's, made wherever it is first asked for, runtime or not.
fn keep_up(name: &str, every: std::time::Duration, upkeep: impl Fn() + Send + 'static) {
    let spawned = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            loop {
                std::thread::sleep(every);
                upkeep();
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the metrics upkeep thread; histograms grow until /metrics is scraped");
    }
}

/// How requests are authenticated.
enum Auth {
    /// Credentials are checked and rate limits applied: the only mode a server runs in.
    Enforced,
    /// Every request carries this principal and no limit applies. Only for measuring what
    /// authentication costs (`zentoria-bench`); not reachable from any configuration.
    #[cfg(feature = "bench")]
    Fixed(Arc<zentoria_platform::Principal>),
}

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    build(state, Auth::Enforced)
}

/// The application as a server runs it: [`app`], except that `POST /v1/chat/completions`, the
/// gateway's hot path, is taken to its handler through the same request context and
/// authentication as every route but without the router and its layers. Those boxed the
/// request's future and cloned a service stack at every layer, which profiles showed to cost
/// about a tenth of a gateway request. With CORS origins configured every request goes
/// through the router (the CORS layer answers there).
pub fn served(state: AppState) -> Served {
    let fast = state
        .settings
        .cors_origins
        .is_empty()
        .then(|| state.clone());
    Served {
        router: app(state),
        fast,
    }
}

/// A [`Router`] with its fast path; see [`served`]. It makes a service per connection that
/// knows the peer's address, as `into_make_service_with_connect_info` does.
#[derive(Clone)]
pub struct Served {
    router: Router,
    fast: Option<AppState>,
}

impl From<Router> for Served {
    /// A router served as it is, with no fast path.
    fn from(router: Router) -> Self {
        Served { router, fast: None }
    }
}

impl<L> tower::Service<axum::serve::IncomingStream<'_, L>> for Served
where
    L: axum::serve::Listener<Addr = SocketAddr>,
{
    type Response = ServedConnection;
    type Error = std::convert::Infallible;
    type Future = std::future::Ready<Result<ServedConnection, std::convert::Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, stream: axum::serve::IncomingStream<'_, L>) -> Self::Future {
        std::future::ready(Ok(ServedConnection {
            served: self.clone(),
            peer: *stream.remote_addr(),
        }))
    }
}

/// [`Served`] on one connection.
#[derive(Clone)]
pub struct ServedConnection {
    served: Served,
    peer: SocketAddr,
}

type FastFuture = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl tower::Service<Request> for ServedConnection {
    type Response = Response;
    type Error = Infallible;
    type Future =
        futures_util::future::Either<axum::routing::future::RouteFuture<Infallible>, FastFuture>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        match &self.served.fast {
            Some(state)
                if req.method() == Method::POST
                    && req.uri().path() == routes::gateway::CHAT_COMPLETIONS =>
            {
                // The address goes straight to the request context: an extension costs a
                // boxed value in a map, and nothing on this path reads it from there.
                futures_util::future::Either::Right(Box::pin(chat_completions(
                    state.clone(),
                    req,
                    self.peer,
                )))
            }
            _ => {
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(self.peer));
                futures_util::future::Either::Left(tower::Service::call(
                    &mut self.served.router,
                    req,
                ))
            }
        }
    }
}

/// `POST /v1/chat/completions` through the layers [`build`] puts around it, in their order:
/// a panic's answer outermost, then the request context, then authentication.
async fn chat_completions(
    state: AppState,
    req: Request,
    peer: SocketAddr,
) -> Result<Response, Infallible> {
    let state = &state;
    let answer = std::panic::AssertUnwindSafe(middleware::around(
        state,
        req,
        Some(peer.ip()),
        routes::gateway::CHAT_COMPLETIONS,
        |req, arrival| {
            middleware::authenticate_at(state, req, arrival.ip, move |req, principal| {
                routes::gateway::chat_completions_unrouted(state, req, arrival.started, principal)
            })
        },
    ));
    Ok(futures_util::FutureExt::catch_unwind(answer)
        .await
        .unwrap_or_else(middleware::panic_response))
}

/// The application with authentication and rate limiting replaced by a fixed principal, so a
/// benchmark can put a number on their cost. Never used by `zentoria serve`.
#[cfg(feature = "bench")]
pub fn app_with_fixed_principal(
    state: AppState,
    principal: Arc<zentoria_platform::Principal>,
) -> Router {
    build(state, Auth::Fixed(principal))
}

fn build(state: AppState, auth: Auth) -> Router {
    let (api, long, doc) = routes::routers();
    let doc = Arc::new(doc);
    let settings = state.settings.clone();

    // Each `Router::layer` call boxes every route once more, and every request clones each
    // box (an allocation and a deep clone apiece), so the layers are applied in as few calls
    // as possible. In a `ServiceBuilder` the first layer is the outermost.

    // Request/response routes get body limits and a deadline; event streams live on.
    let api = api.merge(openapi::docs_router(doc)).layer(
        ServiceBuilder::new()
            .layer(TimeoutLayer::with_status_code(
                axum::http::StatusCode::REQUEST_TIMEOUT,
                settings.request_timeout,
            ))
            // The deadline's early answer needs a body type with a default.
            .layer(tower_http::map_response_body::MapResponseBodyLayer::new(
                axum::body::Body::new,
            ))
            .layer(tower_http::limit::RequestBodyLimitLayer::new(
                settings.body_limit_bytes,
            ))
            .layer(axum::extract::DefaultBodyLimit::max(
                settings.body_limit_bytes,
            )),
    );
    // Uploads enforce their own size limit while streaming (knowledge.max_upload_bytes).
    let long = long.layer(axum::extract::DefaultBodyLimit::disable());
    let router = api.merge(long);
    let router = match auth {
        Auth::Enforced => router.layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::authenticate,
        )),
        #[cfg(feature = "bench")]
        Auth::Fixed(principal) => router.layer(axum::middleware::from_fn(
            move |mut req: axum::extract::Request, next: axum::middleware::Next| {
                req.extensions_mut().insert(principal.clone());
                next.run(req)
            },
        )),
    };
    // Security headers, error shape, metrics and the log line are all done by
    // `request_context`, one layer, rather than a layer each.
    router.with_state(state.clone()).layer(
        ServiceBuilder::new()
            .layer(CatchPanicLayer::custom(middleware::panic_response))
            .layer(axum::middleware::from_fn_with_state(
                state,
                middleware::request_context,
            ))
            .option_layer(cors(&settings.cors_origins)),
    )
}

/// CORS for the configured origins only; with none, no CORS layer: browsers keep their
/// same-origin rule.
fn cors(origins: &[String]) -> Option<CorsLayer> {
    let allowed: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o.trim()).ok())
        .collect();
    if allowed.is_empty() {
        return None;
    }
    let layer = CorsLayer::new()
        .allow_origin(AllowOrigin::list(allowed))
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            middleware::API_KEY_NAME,
            middleware::REQUEST_ID_NAME,
        ])
        .expose_headers([middleware::REQUEST_ID_NAME, header::RETRY_AFTER])
        .max_age(Duration::from_secs(600));
    Some(layer)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn upkeep_runs_again_and_again_on_a_thread_of_its_own() {
        let (tx, rx) = std::sync::mpsc::channel();
        super::keep_up("test-upkeep", Duration::from_millis(5), move || {
            let _ = tx.send(std::thread::current().name().map(str::to_owned));
        });
        for _ in 0..3 {
            let ran_on = rx
                .recv_timeout(Duration::from_secs(30))
                .expect("the upkeep ran");
            assert_eq!(ran_on.as_deref(), Some("test-upkeep"));
        }
    }
}
