//! Benchmark and test hosts for Zentoria.
//!
//! - `zentoria-bench auth [DATABASE_URL]` serves the same application twice for
//!   `scripts/bench-auth.sh`: once with authentication and rate limiting as `zentoria serve`
//!   runs them, once with a fixed principal instead, so that wrk can put a ratio on what the
//!   auth stack costs. Prints one JSON line with both addresses and an API key.
//! - `zentoria-bench worker DATA_DIR DATABASE_URL [CONCURRENCY]` runs job workers with the
//!   benchmark job kinds (`bench.noop`, `bench.sleep`) until SIGINT/SIGTERM: the process the
//!   crash-recovery test kills.
//! - `zentoria-bench fanout [CLIENTS] [RATE] [SECS]` measures event delivery to WebSocket
//!   subscribers over the real HTTP stack.
//! - `zentoria-bench fake-openai [ADDR]` serves canned OpenAI chat answers, whole and streamed,
//!   for `scripts/bench-gateway.sh`.
//! - `zentoria-bench rate RATE SECS KEY CONNECTIONS URL BODY_FILE [URL BODY_FILE]...` sends
//!   POSTs at a fixed rate to each URL, interleaved, and reports per URL the latency counted
//!   from when each request was due (see `rate.rs`).
//! - `zentoria-bench stalls [SECS]` measures how often each CPU stops running a spinning
//!   thread (the floor under any latency measured on the machine; see `stalls.rs`).
//! - `zentoria-bench jobs DATABASE_URL [N] [CONCURRENCY] [RATE] [SECS]` measures the queue with
//!   no-op jobs (see `scripts/bench-jobs.sh`).

mod fake_openai;
mod fanout;
mod jobs;
mod rate;
mod stalls;

use std::io::Write;
use std::net::SocketAddr;

use zentoria::Services;
use zentoria_core::Role;
use zentoria_core::config::Config;
use zentoria_platform::{ClientInfo, NewKeyRequest};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("stalls") {
        return stalls::run(args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(10));
    }
    // The load generator and the fake upstream share the cores with what they measure: each
    // runs on one thread, so a request wakes no other thread of theirs (a futex wake and a
    // context switch each way on the work-stealing runtime). The rest host Zentoria itself and
    // get the runtime `zentoria serve` has.
    let runtime = match args.first().map(String::as_str) {
        Some("rate" | "fake-openai") => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        _ => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?,
    };
    runtime.block_on(run(args))
}

async fn run(args: Vec<String>) -> anyhow::Result<()> {
    match args.first().map(String::as_str) {
        Some("auth") => auth(args.get(1).cloned().unwrap_or_default()).await,
        Some("worker") if args.len() >= 3 => {
            let concurrency = args.get(3).map(|c| c.parse()).transpose()?.unwrap_or(64);
            jobs::worker(&args[1], &args[2], concurrency).await
        }
        Some("jobs") if args.len() >= 2 => {
            let num = |i: usize, d: u64| -> anyhow::Result<u64> {
                Ok(args.get(i).map(|v| v.parse()).transpose()?.unwrap_or(d))
            };
            jobs::throughput(
                &args[1],
                num(2, 20_000)?,
                num(3, 64)? as usize,
                num(4, 1000)?,
                num(5, 5)?,
            )
            .await
        }
        Some("fake-openai") => {
            fake_openai::serve(args.get(1).map_or("127.0.0.1:0", String::as_str)).await
        }
        Some("rate") if args.len() >= 7 && args.len() % 2 == 1 => {
            let targets = args[5..]
                .chunks(2)
                .map(|t| {
                    Ok(rate::Target {
                        url: t[0].clone(),
                        body: std::fs::read_to_string(&t[1])?,
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            rate::run(rate::Plan {
                targets,
                rate: args[1].parse()?,
                secs: args[2].parse()?,
                key: args[3].clone(),
                connections: args[4].parse()?,
            })
            .await
        }
        Some("fanout") => {
            let num = |i: usize, d: u64| -> anyhow::Result<u64> {
                Ok(args.get(i).map(|v| v.parse()).transpose()?.unwrap_or(d))
            };
            fanout::fanout(num(1, 100)? as usize, num(2, 10_000)?, num(3, 5)?).await
        }
        _ => {
            eprintln!(
                "usage: zentoria-bench auth [DATABASE_URL]\n       zentoria-bench worker DATA_DIR DATABASE_URL [CONCURRENCY]\n       zentoria-bench jobs DATABASE_URL [N] [CONCURRENCY] [RATE] [SECS]\n       zentoria-bench fanout [CLIENTS] [RATE] [SECS]\n       zentoria-bench fake-openai [ADDR]\n       zentoria-bench stalls [SECS]\n       zentoria-bench rate RATE SECS KEY CONNECTIONS URL BODY_FILE [URL BODY_FILE]..."
            );
            std::process::exit(2)
        }
    }
}

async fn auth(database_url: String) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut config = Config {
        data_dir: dir.path().to_path_buf(),
        database_url,
        ..Config::default()
    };
    config.log.level = "warn".into();
    let services = Services::open(config).await?;
    let platform = services.platform.clone();
    let suffix = zentoria_core::crypto::random_base62(6);
    let user = platform
        .create_user(
            &format!("bench-{suffix}"),
            "bench-password".into(),
            Role::User,
            None,
            &ClientInfo::cli(),
        )
        .await?;
    let key = platform
        .create_key(
            &user,
            user.role.scopes(),
            NewKeyRequest {
                name: "bench".into(),
                scopes: zentoria_core::Scopes::parse_list("keys:manage,chat")?,
                expires_in: None,
                limits: Default::default(),
            },
            None,
            &ClientInfo::cli(),
        )
        .await?
        .key;
    let principal = platform.authenticate(&key).await?;

    // Limits are on (every request pays for the buckets) but set so high none is refused.
    let settings = zentoria_http::HttpSettings {
        rate_limit_per_minute: u32::MAX,
        rate_limit_burst: u32::MAX,
        body_limit_bytes: 2 * 1024 * 1024,
        request_timeout: std::time::Duration::from_secs(30),
        cors_origins: Vec::new(),
        metrics_require_auth: false,
        hsts: false,
        trusted_proxies: Vec::new(),
    };
    let state = zentoria_http::AppState::new(
        platform,
        services.jobs.clone(),
        services.knowledge.clone(),
        services.events.clone(),
        services.db.clone(),
        settings,
    );
    let enforced = zentoria_http::app(state.clone());
    let open = zentoria_http::app_with_fixed_principal(state, principal);

    let l1 = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let l2 = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let line = serde_json::json!({
        "enforced": format!("http://{}", l1.local_addr()?),
        "open": format!("http://{}", l2.local_addr()?),
        "key": key,
    });
    println!("{line}");
    std::io::stdout().flush()?;

    let s1 = axum::serve(
        l1,
        enforced.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(zentoria::shutdown_signal());
    let s2 = axum::serve(l2, open.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(zentoria::shutdown_signal());
    let (r1, r2) = tokio::join!(s1, s2);
    r1?;
    r2?;
    services.close().await;
    Ok(())
}
