//! An open-loop load generator (the idea of wrk2): requests are scheduled at a fixed rate and
//! each latency is counted from when its request was due, not from when a connection was free,
//! so a server that falls behind shows it in its tail instead of hiding it (no coordinated
//! omission). Used by `scripts/bench-gateway.sh` to compare paths at the same request rate.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

pub struct Plan {
    pub url: String,
    pub rate: u64,
    pub secs: u64,
    pub body: String,
    pub key: String,
    pub connections: usize,
}

/// Sends the planned load and prints one JSON line of results.
pub async fn run(plan: Plan) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(plan.connections)
        .tcp_nodelay(true)
        .build()?;
    let slots = Arc::new(Semaphore::new(plan.connections));
    let total = plan.rate * plan.secs;
    let interval = Duration::from_secs_f64(1.0 / plan.rate as f64);
    let body = Arc::new(plan.body);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Result<Duration, ()>>();
    let start = Instant::now() + Duration::from_millis(100);
    for i in 0..total {
        let due = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(due.into()).await;
        let (client, slots, body, tx) = (client.clone(), slots.clone(), body.clone(), tx.clone());
        let (url, key) = (plan.url.clone(), plan.key.clone());
        tokio::spawn(async move {
            let Ok(_slot) = slots.acquire_owned().await else {
                return;
            };
            let sent = client
                .post(&url)
                .bearer_auth(&key)
                .header("content-type", "application/json")
                .body(body.as_str().to_owned())
                .send()
                .await;
            let ok = match sent {
                Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                _ => false,
            };
            let _ = tx.send(if ok { Ok(due.elapsed()) } else { Err(()) });
        });
    }
    drop(tx);
    let mut latencies = Vec::with_capacity(total as usize);
    let mut errors = 0u64;
    while let Some(r) = rx.recv().await {
        match r {
            Ok(d) => latencies.push(d.as_secs_f64() * 1000.0),
            Err(()) => errors += 1,
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let q = |p: f64| -> f64 {
        if latencies.is_empty() {
            return f64::NAN;
        }
        let i = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        latencies[i]
    };
    println!(
        "{}",
        serde_json::json!({
            "rate": plan.rate, "sent": total, "ok": latencies.len(), "errors": errors,
            "achieved_per_s": latencies.len() as f64 / elapsed,
            "p50_ms": q(0.50), "p90_ms": q(0.90), "p99_ms": q(0.99), "p999_ms": q(0.999),
        })
    );
    Ok(())
}
