//! An open-loop load generator (the idea of wrk2): requests are scheduled at a fixed rate and
//! each latency is counted from when its request was due, not from when a connection was free,
//! so a server that falls behind shows it in its tail instead of hiding it (no coordinated
//! omission). Used by `scripts/bench-gateway.sh` to compare paths at the same request rate.
//!
//! Several targets can share one schedule: each gets the rate, their requests interleaved
//! (target k of n is due k/n of an interval after target 0), so a stall of the machine —
//! frequent on a shared VM — lands on every path alike instead of on whichever ran then.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustix::time::{
    ClockId, Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec, clock_gettime,
    timerfd_create, timerfd_settime,
};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::Semaphore;

pub struct Target {
    pub url: String,
    pub body: String,
}

pub struct Plan {
    pub targets: Vec<Target>,
    /// Requests a second, to each target.
    pub rate: u64,
    pub secs: u64,
    pub key: String,
    /// Connections per target.
    pub connections: usize,
}

struct Sent {
    target: usize,
    latency: Option<Duration>,
    /// How long after it was due the generator got to send it (its own delay, part of
    /// `latency`).
    late: Duration,
    /// The gateway's own time as it reports it (`x-zentoria-overhead-ms`), when it does.
    own_ms: Option<f64>,
}

/// Sends the planned load and prints one JSON line of results per target.
pub async fn run(plan: Plan) -> anyhow::Result<()> {
    let n = plan.targets.len();
    anyhow::ensure!(
        n > 0 && plan.rate > 0,
        "a target and a positive rate are needed"
    );
    // hyper's own pooled client, with as little work of its own per request as possible: the
    // generator shares the cores with what it measures.
    let clients: Vec<Client<HttpConnector, Full<Bytes>>> = (0..n)
        .map(|_| {
            let mut tcp = HttpConnector::new();
            tcp.set_nodelay(true);
            Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(plan.connections)
                .build(tcp)
        })
        .collect();
    let requests = plan
        .targets
        .iter()
        .map(|t| {
            let uri: Uri = t.url.parse()?;
            let auth = HeaderValue::from_str(&format!("Bearer {}", plan.key))?;
            Ok((uri, auth, Bytes::from(t.body.clone())))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let requests = Arc::new(requests);
    let slots: Vec<_> = (0..n)
        .map(|_| Arc::new(Semaphore::new(plan.connections)))
        .collect();
    let targets: Vec<Target> = plan.targets;
    let per_target = plan.rate * plan.secs;
    let interval = Duration::from_secs_f64(1.0 / plan.rate as f64);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Sent>();
    let mut pacer = Pacer::new()?;
    let start = Instant::now() + Duration::from_millis(100);
    let total = per_target * n as u64;
    let due_at = |i: u64| start + interval.mul_f64(i as f64 / n as f64);
    let mut i = 0;
    while i < total {
        // Every request due by now is sent; then the thread sleeps until the next is due.
        let now = Instant::now();
        while i < total {
            let due = due_at(i);
            if due > now {
                break;
            }
            let target = (i % n as u64) as usize;
            i += 1;
            let (client, slots, tx) = (clients[target].clone(), slots[target].clone(), tx.clone());
            let requests = requests.clone();
            tokio::spawn(async move {
                let late = due.elapsed();
                let Ok(_slot) = slots.acquire_owned().await else {
                    return;
                };
                let (uri, auth, body) = &requests[target];
                let mut request = Request::new(Full::new(body.clone()));
                *request.method_mut() = Method::POST;
                *request.uri_mut() = uri.clone();
                let headers = request.headers_mut();
                headers.insert(AUTHORIZATION, auth.clone());
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                let (ok, own_ms) = match client.request(request).await {
                    Ok(r) if r.status().is_success() => {
                        let own_ms = r
                            .headers()
                            .get("x-zentoria-overhead-ms")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.parse::<f64>().ok());
                        (r.into_body().collect().await.is_ok(), own_ms)
                    }
                    _ => (false, None),
                };
                let latency = ok.then(|| due.elapsed());
                let _ = tx.send(Sent {
                    target,
                    latency,
                    late,
                    own_ms,
                });
            });
        }
        if i < total {
            pacer.sleep_until(due_at(i)).await?;
        }
    }
    drop(tx);
    let mut latencies: Vec<Vec<f64>> = vec![Vec::with_capacity(per_target as usize); n];
    let mut own: Vec<Vec<f64>> = vec![Vec::new(); n];
    let mut late: Vec<Vec<f64>> = vec![Vec::with_capacity(per_target as usize); n];
    let mut errors = vec![0u64; n];
    while let Some(s) = rx.recv().await {
        late[s.target].push(s.late.as_secs_f64() * 1000.0);
        match s.latency {
            Some(d) => latencies[s.target].push(d.as_secs_f64() * 1000.0),
            None => errors[s.target] += 1,
        }
        own[s.target].extend(s.own_ms);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let generator_cpu_ms = own_cpu_ms();
    for (i, ((mut l, mut o), mut late)) in latencies.into_iter().zip(own).zip(late).enumerate() {
        let mut line = serde_json::json!({
            "url": targets[i].url, "rate": plan.rate, "sent": per_target, "ok": l.len(),
            "errors": errors[i], "achieved_per_s": l.len() as f64 / elapsed,
            "p50_ms": quantile(&mut l, 0.50), "p90_ms": quantile(&mut l, 0.90),
            "p99_ms": quantile(&mut l, 0.99), "p999_ms": quantile(&mut l, 0.999),
            "generator_cpu_ms": generator_cpu_ms,
            "late_p50_ms": quantile(&mut late, 0.50), "late_p99_ms": quantile(&mut late, 0.99),
        });
        if !o.is_empty() {
            // What the gateway reports as its own time, beside what the client saw.
            line["own_p50_ms"] = quantile(&mut o, 0.50).into();
            line["own_p99_ms"] = quantile(&mut o, 0.99).into();
            line["own_p999_ms"] = quantile(&mut o, 0.999).into();
        }
        println!("{line}");
    }
    Ok(())
}

/// Sleeps until an instant, to within microseconds, on the runtime's own thread: a timerfd
/// (`CLOCK_MONOTONIC`, which `Instant` reads on Linux) registered with tokio's reactor. tokio's
/// own timer rounds up to whole milliseconds, which would blur the latencies; an OS thread
/// sleeping for the schedule would cost a cross-thread wake-up per request.
struct Pacer {
    timer: AsyncFd<OwnedFd>,
    /// The same moment on both clocks, to turn an `Instant` into an absolute timer value.
    epoch: (Instant, Timespec),
}

impl Pacer {
    fn new() -> anyhow::Result<Self> {
        let fd = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )?;
        let epoch = (Instant::now(), clock_gettime(ClockId::Monotonic));
        // Deprecated because an arbitrary `AsRawFd` may change or close its descriptor while
        // registered; an `OwnedFd` moved in here cannot, which is the contract the unsafe
        // `register_with_interest` asks for (this workspace forbids `unsafe`).
        #[allow(deprecated)]
        let timer = AsyncFd::with_interest(fd, Interest::READABLE)?;
        Ok(Self { timer, epoch })
    }

    async fn sleep_until(&mut self, when: Instant) -> anyhow::Result<()> {
        let Some(ahead) = when.checked_duration_since(self.epoch.0) else {
            return Ok(());
        };
        let at = self.epoch.1 + Timespec::try_from(ahead)?;
        let zero = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        timerfd_settime(
            self.timer.get_ref(),
            TimerfdTimerFlags::ABSTIME,
            &Itimerspec {
                it_interval: zero,
                it_value: at,
            },
        )?;
        loop {
            let mut ready = self.timer.readable().await?;
            let mut expirations = [0u8; 8];
            match ready.try_io(|fd| Ok(rustix::io::read(fd.get_ref(), &mut expirations)?)) {
                Ok(read) => {
                    read?;
                    return Ok(());
                }
                Err(_would_block) => continue,
            }
        }
    }
}

/// CPU time (user + system) this process has used so far, in milliseconds, from
/// `/proc/self/stat` (Linux; clock ticks of 1/100 s, as `USER_HZ` is on every Linux ABI).
fn own_cpu_ms() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces): state is field 3, utime 14.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ').skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) * 10.0)
}

/// The `p` quantile (nearest rank) of `values`, sorting them; NaN when there are none.
fn quantile(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    values[((values.len() as f64 - 1.0) * p).round() as usize]
}
