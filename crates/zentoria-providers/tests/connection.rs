//! How requests leave the client: straight or through a proxy (forwarding for HTTP, a CONNECT
//! tunnel for HTTPS), over TLS for https endpoints, and never after a redirect.

mod common;

use std::sync::{Arc, Mutex};

use common::scenarios::request;
use common::{API_KEY, Fake, Wire, fast_options};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use zentoria_providers::{ClientConfig, Provider, ProviderError, ProviderKind, Proxy};

/// What a proxy saw at the start of each connection: the request line and its
/// `Proxy-Authorization`.
type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// Reads from `socket` until a whole request head has arrived (and whatever came with it).
async fn read_head(socket: &mut TcpStream) -> Vec<u8> {
    let mut head = Vec::new();
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let mut buf = [0u8; 4096];
        let n = socket.read(&mut buf).await.unwrap();
        assert!(n > 0, "the client closed before a whole head");
        head.extend_from_slice(&buf[..n]);
    }
    head
}

/// A minimal HTTP proxy on a real socket. Forwarding requests (`METHOD http://host/… HTTP/1.1`)
/// are passed on to `host` byte for byte, the rest of the connection spliced; `CONNECT` is
/// refused with `connect_status`.
async fn proxy(connect_status: &'static str) -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://proxyuser:s3cret@{}", listener.local_addr().unwrap());
    let seen: Seen = Arc::default();
    let record = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let (mut client, _) = listener.accept().await.unwrap();
            let record = Arc::clone(&record);
            tokio::spawn(async move {
                let head = read_head(&mut client).await;
                let text = String::from_utf8_lossy(&head).into_owned();
                let line = text.lines().next().unwrap().to_owned();
                let auth = text.lines().find_map(|l| {
                    l.strip_prefix("proxy-authorization: ")
                        .or_else(|| l.strip_prefix("Proxy-Authorization: "))
                        .map(str::to_owned)
                });
                record.lock().unwrap().push((line.clone(), auth));
                if line.starts_with("CONNECT ") {
                    let answer = format!("HTTP/1.1 {connect_status}\r\ncontent-length: 0\r\n\r\n");
                    client.write_all(answer.as_bytes()).await.unwrap();
                    return;
                }
                let target = line.split(' ').nth(1).unwrap();
                let host = target
                    .strip_prefix("http://")
                    .and_then(|rest| rest.split('/').next())
                    .expect("a forwarding request names its whole URL");
                let mut upstream = TcpStream::connect(host).await.unwrap();
                upstream.write_all(&head).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    (url, seen)
}

fn provider(base_url: &str, proxy: Proxy) -> Provider {
    let config = ClientConfig::new()
        .with_base_url(base_url)
        .with_api_key(API_KEY)
        .with_options(fast_options())
        .with_proxy(proxy);
    Provider::new(ProviderKind::OpenAi, config).unwrap()
}

#[tokio::test]
async fn plain_http_goes_through_a_forwarding_proxy_with_its_credentials() {
    let fake = Fake::start(Wire::OpenAi).await;
    let (proxy_url, seen) = proxy("403 Forbidden").await;
    let provider = provider(&fake.base_url, Proxy::Url(proxy_url));

    let answer = provider.chat(&request()).await.unwrap();
    assert_eq!(answer.message.content, "Hello, world!");
    let stream = provider.chat_stream(&request()).await.unwrap();
    let whole = stream.collect_response().await.unwrap();
    assert_eq!(whole.message.content, "Hello, world!");

    let seen = seen.lock().unwrap().clone();
    assert!(!seen.is_empty());
    let (line, auth) = &seen[0];
    assert_eq!(
        line,
        &format!("POST {}/v1/chat/completions HTTP/1.1", fake.base_url),
        "absolute-form request line"
    );
    // base64("proxyuser:s3cret")
    assert_eq!(auth.as_deref(), Some("Basic cHJveHl1c2VyOnMzY3JldA=="));
    // The upstream got the request, with its own credentials and not the proxy's.
    let recorded = fake.chat_requests();
    assert_eq!(recorded.len(), 2);
    assert_eq!(
        recorded[0].headers["authorization"],
        format!("Bearer {API_KEY}")
    );
}

#[tokio::test]
async fn https_is_tunnelled_and_a_refusing_proxy_is_named() {
    let (proxy_url, seen) = proxy("407 Proxy Authentication Required").await;
    let provider = provider("https://api.openai.test", Proxy::Url(proxy_url.clone()));

    let err = provider.chat(&request()).await.unwrap_err();
    assert!(matches!(err, ProviderError::Connect { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("through the proxy"), "{text}");
    assert!(
        !text.contains("s3cret"),
        "no proxy password in errors: {text}"
    );
    assert!(!format!("{provider:?}").contains("s3cret"));

    let seen = seen.lock().unwrap().clone();
    let (line, auth) = &seen[0];
    assert_eq!(line, "CONNECT api.openai.test:443 HTTP/1.1");
    assert_eq!(auth.as_deref(), Some("Basic cHJveHl1c2VyOnMzY3JldA=="));
}

#[tokio::test]
async fn direct_ignores_proxies_and_unsupported_proxies_are_refused() {
    let fake = Fake::start(Wire::OpenAi).await;
    let answer = provider(&fake.base_url, Proxy::Direct)
        .chat(&request())
        .await
        .unwrap();
    assert_eq!(answer.message.content, "Hello, world!");

    let config = ClientConfig::new()
        .with_base_url(&fake.base_url)
        .with_proxy(Proxy::Url("socks5://127.0.0.1:1080".into()));
    let err = Provider::new(ProviderKind::OpenAi, config).unwrap_err();
    assert!(matches!(err, ProviderError::Config { .. }), "{err:?}");
    assert!(err.to_string().contains("socks5"), "{err}");
}

#[tokio::test]
async fn redirects_are_reported_not_followed() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(Mutex::new(0usize));
    let counter = Arc::clone(&hits);
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let mut read = 0;
                loop {
                    let n = socket.read(&mut buf[read..]).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    read += n;
                    if buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                *counter.lock().unwrap() += 1;
                let answer = "HTTP/1.1 308 Permanent Redirect\r\nlocation: http://elsewhere.test/v1/chat/completions\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    let err = provider(&base, Proxy::Direct)
        .chat(&request())
        .await
        .unwrap_err();
    match &err {
        ProviderError::Http {
            status, message, ..
        } => {
            assert_eq!(*status, 308);
            assert!(message.contains("http://elsewhere.test"), "{message}");
            assert!(message.contains("not followed"), "{message}");
        }
        other => panic!("expected an HTTP error, got {other:?}"),
    }
    assert!(!err.is_retryable());
    assert_eq!(
        *hits.lock().unwrap(),
        1,
        "asked once, not retried or followed"
    );
}

#[tokio::test]
async fn https_endpoints_speak_tls() {
    // A server that answers a TLS ClientHello with plain HTTP: the client must have sent one.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("https://{}", listener.local_addr().unwrap());
    let first_byte = Arc::new(Mutex::new(None));
    let record = Arc::clone(&first_byte);
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut byte = [0u8; 1];
        socket.read_exact(&mut byte).await.unwrap();
        *record.lock().unwrap() = Some(byte[0]);
        let _ = socket
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .await;
    });
    let options = zentoria_providers::ProviderOptions {
        max_retries: 0,
        ..fast_options()
    };
    let config = ClientConfig::new()
        .with_base_url(&base)
        .with_options(options)
        .with_proxy(Proxy::Direct);
    let err = Provider::new(ProviderKind::OpenAi, config)
        .unwrap()
        .chat(&request())
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Connect { .. }), "{err:?}");
    assert_eq!(
        *first_byte.lock().unwrap(),
        Some(0x16),
        "a TLS handshake record opens the connection"
    );
}

#[tokio::test]
async fn connections_are_pooled_per_thread() {
    use std::sync::atomic::Ordering;

    let fake = Fake::start(Wire::OpenAi).await;
    let provider = Arc::new(provider(&fake.base_url, Proxy::Direct));
    for _ in 0..3 {
        provider.chat(&request()).await.unwrap();
    }
    assert_eq!(
        fake.state.connections.load(Ordering::Relaxed),
        1,
        "requests on one thread reuse its connection"
    );

    // Another thread with a runtime of its own (as each HTTP serving thread has) gets a
    // connection of its own, and reuses it in turn.
    let other = Arc::clone(&provider);
    tokio::task::spawn_blocking(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            for _ in 0..2 {
                let answer = other.chat(&request()).await.unwrap();
                assert_eq!(answer.message.content, "Hello, world!");
            }
        });
    })
    .await
    .unwrap();
    assert_eq!(fake.state.connections.load(Ordering::Relaxed), 2);

    provider.chat(&request()).await.unwrap();
    assert_eq!(
        fake.state.connections.load(Ordering::Relaxed),
        2,
        "the first thread's connection is still pooled"
    );
    assert_eq!(fake.chat_requests().len(), 6);
}

/// An OpenAI-compatible server that answers one request per connection and then closes it,
/// without saying so (no `Connection: close`), as a server timing out an idle keep-alive
/// connection does; counts the connections and the request lines it saw.
async fn one_answer_per_connection() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let record = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let head = read_head(&mut socket).await;
            let text = String::from_utf8_lossy(&head).into_owned();
            record
                .lock()
                .unwrap()
                .push(text.lines().next().unwrap().to_owned());
            let body = r#"{"choices":[{"message":{"role":"assistant","content":"Hello, world!"},"finish_reason":"stop"}]}"#;
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            socket.write_all(answer.as_bytes()).await.unwrap();
            drop(socket);
        }
    });
    (url, seen)
}

#[tokio::test]
async fn a_pooled_connection_the_server_closed_is_replaced() {
    let (url, seen) = one_answer_per_connection().await;
    let provider = provider(&url, Proxy::Direct);
    for _ in 0..3 {
        let answer = provider.chat(&request()).await.unwrap();
        assert_eq!(answer.message.content, "Hello, world!");
        // Let the connection's task see the close before the next request.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen, ["POST /v1/chat/completions HTTP/1.1"; 3],
        "one connection per request, each request sent once, in origin form"
    );
}

#[tokio::test]
async fn streamed_and_whole_answers_share_a_connection() {
    use futures_util::StreamExt;
    use std::sync::atomic::Ordering;

    let fake = Fake::start(Wire::OpenAi).await;
    let provider = provider(&fake.base_url, Proxy::Direct);
    for _ in 0..2 {
        let mut stream = provider.chat_stream(&request()).await.unwrap();
        while let Some(event) = stream.next().await {
            event.unwrap();
        }
        provider.chat(&request()).await.unwrap();
    }
    assert_eq!(fake.chat_requests().len(), 4);
    assert_eq!(
        fake.state.connections.load(Ordering::Relaxed),
        1,
        "a stream read to its end leaves its connection ready for the next request"
    );
}
