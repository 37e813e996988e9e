//! HTTP serving on a thread per core.
//!
//! One task accepts connections and hands each to the serving thread with the fewest open
//! connections; every serving thread runs its own single-threaded runtime, so a connection's
//! reads, handler and writes — and the provider connections its requests open, which the
//! providers' client pools per thread — stay on one thread, and a request wakes no other thread.
//! Against tokio's work-stealing scheduler, whose idle workers were woken as requests arrived,
//! that raised what the gateway answers on 2 cores by 35–49% and cut its CPU per request at
//! 2,000–4,000 requests/s by 14–25% (docs/BENCHMARKS.md, "thread per core").
//!
//! The serving threads' runtimes outlive the HTTP servers on them: a database connection or a
//! timer first made by a request belongs to the runtime that made it, so they stay up until
//! the services are closed ([`Server::finish`]).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Context as _;
use axum::serve::{Listener, ListenerExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use zentoria_http::Served;

/// The running HTTP server: an accept task and its serving threads.
pub(crate) struct Server {
    acceptor: tokio::task::JoinHandle<()>,
    stop: watch::Sender<bool>,
    shards: Vec<Shard>,
}

struct Shard {
    /// Connections open on this thread.
    open: Arc<AtomicUsize>,
    served: oneshot::Receiver<io::Result<()>>,
    exit: oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

/// A serving thread as the accept task sees it.
struct Route {
    connections: mpsc::UnboundedSender<(std::net::TcpStream, SocketAddr)>,
    open: Arc<AtomicUsize>,
}

impl Server {
    /// Starts `threads` serving threads (at least one) and the accept task on the current
    /// runtime.
    pub(crate) fn start(
        listener: TcpListener,
        app: impl Into<Served>,
        threads: usize,
    ) -> anyhow::Result<Self> {
        let app = app.into();
        let local = listener.local_addr()?;
        let (stop, stopped) = watch::channel(false);
        let mut shards = Vec::new();
        let mut routes = Vec::new();
        for i in 0..threads.max(1) {
            let (connections, incoming) = mpsc::unbounded_channel();
            let open = Arc::new(AtomicUsize::new(0));
            let handoff = Handoff {
                incoming,
                local,
                open: open.clone(),
            };
            shards.push(Shard::spawn(i, handoff, app.clone(), stopped.clone())?);
            routes.push(Route { connections, open });
        }
        let acceptor = tokio::spawn(accept(listener, routes));
        Ok(Server {
            acceptor,
            stop,
            shards,
        })
    }

    /// Stops accepting and waits until the connections open now have finished.
    pub(crate) async fn drain(&mut self) -> anyhow::Result<()> {
        let open: usize = self
            .shards
            .iter()
            .map(|s| s.open.load(Ordering::Relaxed))
            .sum();
        tracing::info!(
            open,
            "no longer accepting; waiting for the open connections"
        );
        self.acceptor.abort();
        // Awaited so that the listener is closed (new connections refused) from here on.
        let _ = (&mut self.acceptor).await;
        let _ = self.stop.send(true);
        let mut failure = None;
        for (i, shard) in self.shards.iter_mut().enumerate() {
            let outcome = match (&mut shard.served).await {
                Ok(Ok(())) => continue,
                Ok(Err(e)) => anyhow::Error::new(e),
                Err(_) => anyhow::anyhow!("it stopped unexpectedly"),
            };
            failure.get_or_insert(outcome.context(format!("HTTP serving thread {i} failed")));
        }
        failure.map_or(Ok(()), Err)
    }

    /// Ends the serving threads; call once the services are closed.
    pub(crate) async fn finish(self) {
        for shard in self.shards {
            let _ = shard.exit.send(());
            let thread = shard.thread;
            if tokio::task::spawn_blocking(move || thread.join())
                .await
                .is_ok_and(|joined| joined.is_err())
            {
                tracing::error!("an HTTP serving thread panicked");
            }
        }
    }
}

impl Shard {
    fn spawn(
        index: usize,
        handoff: Handoff,
        app: Served,
        mut stopped: watch::Receiver<bool>,
    ) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start an HTTP serving runtime")?;
        let open = handoff.open.clone();
        let (served_tx, served) = oneshot::channel();
        let (exit, exited) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("zentoria-http-{index}"))
            .spawn(move || {
                runtime.block_on(async move {
                    tokio::spawn(keep_a_timer_armed());
                    // Without TCP_NODELAY, small writes (every event of a stream) wait for the
                    // peer's delayed ACK: 40 ms per streamed answer, measured
                    // (docs/BENCHMARKS.md, gateway).
                    let listener = handoff.tap_io(|io| {
                        if let Err(e) = io.tcp.set_nodelay(true) {
                            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
                        }
                    });
                    let result = axum::serve(listener, app)
                        .with_graceful_shutdown(async move {
                            let _ = stopped.wait_for(|stop| *stop).await;
                        })
                        .await;
                    let _ = served_tx.send(result);
                    let _ = exited.await;
                });
            })
            .context("cannot start an HTTP serving thread")?;
        Ok(Shard {
            open,
            served,
            exit,
            thread,
        })
    }
}

/// How often a serving thread's runtime wakes with nothing to do; see [`keep_a_timer_armed`].
const IDLE_TICK: Duration = Duration::from_secs(1);

/// Keeps a timer due within [`IDLE_TICK`] on this runtime at all times. tokio's timer wakes
/// the runtime's I/O driver (a write to its eventfd, then one more `epoll_wait`) whenever a
/// timer is registered that is due before the earliest one it parked with — and "before" is
/// every timer when none was pending. Requests register their timeouts from inside the running
/// thread, so that wake-up is never needed; with this tick pending, timeouts longer than it
/// (the request timeout, a provider's first-token timeout) wake nothing. Measured: a write and
/// up to an `epoll_wait` less per gateway request (docs/BENCHMARKS.md).
async fn keep_a_timer_armed() {
    let mut tick = tokio::time::interval(IDLE_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
    }
}

/// Accepts connections and gives each to the serving thread with the fewest open. A thread
/// that has stopped (it would only by a bug) is left out from then on, rather than being the
/// one with the fewest open forever.
async fn accept(mut listener: TcpListener, mut routes: Vec<Route>) {
    loop {
        // axum's accept retries by itself: it logs and pauses on errors such as EMFILE.
        let (tcp, peer) = Listener::accept(&mut listener).await;
        let mut tcp = match tcp.into_std() {
            Ok(tcp) => tcp,
            Err(e) => {
                tracing::debug!(error = %e, %peer, "cannot hand over a connection");
                continue;
            }
        };
        loop {
            let Some(i) = (0..routes.len()).min_by_key(|&i| routes[i].open.load(Ordering::Relaxed))
            else {
                tracing::error!("every HTTP serving thread has stopped; no longer accepting");
                return;
            };
            routes[i].open.fetch_add(1, Ordering::Relaxed);
            match routes[i].connections.send((tcp, peer)) {
                Ok(()) => break,
                Err(mpsc::error::SendError((back, _))) => {
                    tracing::error!("an HTTP serving thread has stopped");
                    routes.swap_remove(i);
                    tcp = back;
                }
            }
        }
    }
}

/// A serving thread's end of the hand-over, as a listener for `axum::serve`.
struct Handoff {
    incoming: mpsc::UnboundedReceiver<(std::net::TcpStream, SocketAddr)>,
    local: SocketAddr,
    open: Arc<AtomicUsize>,
}

impl Listener for Handoff {
    type Io = Connection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Connection, SocketAddr) {
        loop {
            let Some((tcp, peer)) = self.incoming.recv().await else {
                // The accept task is gone: shutdown has begun and will end this server.
                return std::future::pending().await;
            };
            let open = Open(self.open.clone());
            match TcpStream::from_std(tcp) {
                Ok(tcp) => return (Connection { tcp, _open: open }, peer),
                Err(e) => tracing::debug!(error = %e, %peer, "cannot take over a connection"),
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }
}

/// Counts a connection as open on its thread until it is dropped.
struct Open(Arc<AtomicUsize>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An accepted connection, counted while it is open.
pub(crate) struct Connection {
    tcp: TcpStream,
    _open: Open,
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::Router;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// Sends `GET path` on `tcp` (kept alive) and returns the status line and the body.
    async fn get_on(tcp: &mut TcpStream, path: &str) -> (String, String) {
        let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n");
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut got = Vec::new();
        loop {
            let mut buf = [0u8; 1024];
            let n = tcp.read(&mut buf).await.unwrap();
            assert!(n > 0, "the server closed the connection mid-response");
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got).into_owned();
            let Some((head, body)) = text.split_once("\r\n\r\n") else {
                continue;
            };
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .expect("a content-length")
                .parse()
                .unwrap();
            if body.len() >= length {
                return (head.lines().next().unwrap().to_owned(), body.to_owned());
            }
        }
    }

    fn app() -> Router {
        Router::new().route(
            "/thread",
            get(|| async { std::thread::current().name().unwrap_or("?").to_owned() }),
        )
    }

    async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        for _ in 0..500 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("timed out waiting until {what}");
    }

    fn open(server: &Server) -> Vec<usize> {
        server
            .shards
            .iter()
            .map(|s| s.open.load(Ordering::Relaxed))
            .collect()
    }

    #[tokio::test]
    async fn connections_go_to_the_thread_with_fewest_open() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut server = Server::start(listener, app(), 2).unwrap();

        let mut connections = Vec::new();
        let mut threads = Vec::new();
        for _ in 0..4 {
            let mut tcp = TcpStream::connect(addr).await.unwrap();
            let (status, thread) = get_on(&mut tcp, "/thread").await;
            assert_eq!(status, "HTTP/1.1 200 OK");
            threads.push(thread);
            connections.push(tcp);
        }
        assert_eq!(
            threads,
            [
                "zentoria-http-0",
                "zentoria-http-1",
                "zentoria-http-0",
                "zentoria-http-1"
            ]
        );
        // Every request on a connection is served by its thread.
        let (_, again) = get_on(&mut connections[1], "/thread").await;
        assert_eq!(again, "zentoria-http-1");
        assert_eq!(open(&server), [2, 2]);

        // Closed connections stop counting: the next goes where fewest are open.
        drop(connections.remove(2));
        drop(connections.remove(0));
        wait_until("both closed connections are counted out", || {
            open(&server) == [0, 2]
        })
        .await;
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        assert_eq!(get_on(&mut tcp, "/thread").await.1, "zentoria-http-0");

        drop(connections);
        drop(tcp);
        server.drain().await.unwrap();
        server.finish().await;
    }

    #[tokio::test]
    async fn a_stopped_thread_gets_no_more_connections() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut routes = Vec::new();
        let mut receivers = Vec::new();
        for _ in 0..2 {
            let (connections, incoming) = mpsc::unbounded_channel();
            routes.push(Route {
                connections,
                open: Arc::new(AtomicUsize::new(0)),
            });
            receivers.push(incoming);
        }
        let mut alive = receivers.pop().unwrap();
        drop(receivers); // the first thread has stopped
        let acceptor = tokio::spawn(accept(listener, routes));
        let mut clients = Vec::new();
        for _ in 0..3 {
            clients.push(TcpStream::connect(addr).await.unwrap());
            let (_, peer) = alive.recv().await.unwrap();
            assert_eq!(peer, clients.last().unwrap().local_addr().unwrap());
        }
        acceptor.abort();
    }

    #[tokio::test]
    async fn draining_finishes_requests_in_flight_and_refuses_new_connections() {
        let (release, released) = watch::channel(false);
        let app = app().route(
            "/slow",
            get(move || {
                let mut released = released.clone();
                async move {
                    let _ = released.wait_for(|r| *r).await;
                    "finished"
                }
            }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut server = Server::start(listener, app, 2).unwrap();

        let mut tcp = TcpStream::connect(addr).await.unwrap();
        let slow = tokio::spawn(async move { get_on(&mut tcp, "/slow").await });
        wait_until("the slow request's connection is open", || {
            open(&server).iter().sum::<usize>() == 1
        })
        .await;
        let drain = tokio::spawn(async move {
            server.drain().await.unwrap();
            server
        });
        // The listener closes while the request is still waiting.
        let mut refused = false;
        for _ in 0..500 {
            if TcpStream::connect(addr).await.is_err() {
                refused = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(refused, "new connections are refused once draining begins");
        assert!(
            !drain.is_finished(),
            "draining waits for the request in flight"
        );

        release.send(true).unwrap();
        let (status, body) = slow.await.unwrap();
        assert_eq!(
            (status.as_str(), body.as_str()),
            ("HTTP/1.1 200 OK", "finished")
        );
        let server = drain.await.unwrap();
        server.finish().await;
    }
}
