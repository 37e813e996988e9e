//! Event fan-out: `CLIENTS` WebSocket subscribers on the real HTTP stack, events published at
//! `RATE` per second for `SECS` seconds; reports what each client received.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use zentoria_core::config::Config;
use zentoria_events::NewEvent;

pub async fn fanout(clients: usize, rate: u64, secs: u64) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut config = Config {
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    config.log.level = "warn".into();
    config.http.rate_limit_per_minute = 0;
    let services = zentoria::Services::open(config).await?;
    let user = services
        .platform
        .create_user(
            "fanout",
            "fanout-password".into(),
            zentoria_core::Role::Admin,
            None,
            &zentoria_platform::ClientInfo::cli(),
        )
        .await?;
    let key = services
        .platform
        .create_key(
            &user,
            user.role.scopes(),
            zentoria_platform::NewKeyRequest {
                name: "fanout".into(),
                scopes: zentoria_core::Scopes::only(zentoria_core::Scope::Admin),
                expires_in: None,
                limits: Default::default(),
            },
            None,
            &zentoria_platform::ClientInfo::cli(),
        )
        .await?
        .key;
    let events = services.events.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(zentoria::serve(services, listener, async move {
        let _ = stop_rx.await;
    }));

    let received: Arc<Vec<AtomicU64>> = Arc::new((0..clients).map(|_| AtomicU64::new(0)).collect());
    let gaps = Arc::new(AtomicU64::new(0));
    let closed = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for c in 0..clients {
        let mut req = format!("ws://{addr}/ws?events=bench.*").into_client_request()?;
        req.headers_mut().insert("X-API-Key", key.parse()?);
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await?;
        let (received, gaps, closed) = (received.clone(), gaps.clone(), closed.clone());
        tasks.push(tokio::spawn(async move {
            let mut next = 0u64;
            while let Some(Ok(msg)) = ws.next().await {
                if msg.is_close() {
                    closed.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                let Ok(text) = msg.to_text() else { continue };
                let v: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
                let n = v["data"]["n"].as_u64().unwrap_or(u64::MAX);
                if n != next {
                    gaps.fetch_add(1, Ordering::Relaxed);
                }
                next = n + 1;
                received[c].fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    while events.subscribers() < clients {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let total = rate * secs;
    let started = Instant::now();
    for n in 0..total {
        if n % 100 == 0 {
            let due = Duration::from_secs_f64(n as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
        events
            .publish(NewEvent::new(
                "bench.tick",
                None,
                serde_json::json!({ "n": n }),
            ))
            .await;
    }
    let publish_s = started.elapsed().as_secs_f64();
    // Let clients catch up (bounded).
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline
        && received.iter().any(|r| r.load(Ordering::Relaxed) < total)
        && closed.load(Ordering::Relaxed) == 0
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let deliver_s = started.elapsed().as_secs_f64();
    let counts: Vec<u64> = received.iter().map(|r| r.load(Ordering::Relaxed)).collect();
    let delivered: u64 = counts.iter().sum();
    println!(
        "{}",
        serde_json::json!({
            "clients": clients,
            "events": total,
            "offered_events_per_s": (total as f64 / publish_s).round(),
            "delivered_messages_per_s": (delivered as f64 / deliver_s).round(),
            "min_received": counts.iter().min(),
            "clients_complete": counts.iter().filter(|&&c| c == total).count(),
            "sequence_gaps": gaps.load(Ordering::Relaxed),
            "disconnected_as_slow": closed.load(Ordering::Relaxed),
        })
    );
    let _ = stop_tx.send(());
    for t in tasks {
        t.abort();
    }
    server.await??;
    Ok(())
}
