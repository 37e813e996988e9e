//! Prometheus series the HTTP layer records on every request, registered once per label set
//! and kept: building a labelled key and looking it up in the registry on every request
//! showed in profiles. The recorder is process-wide, and so are these.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use axum::http::Method;
use metrics::{Counter, Histogram};
use zentoria_core::cache::OnceMap;

/// `zentoria_http_requests_total` and `zentoria_http_request_duration_seconds` of one route
/// template, method and status.
pub(crate) struct RequestSeries {
    pub requests: Counter,
    pub duration_seconds: Histogram,
}

/// By route template, then (method, status): a route sees few of those, so a scan.
type ByRoute = HashMap<String, Vec<(&'static str, u16, &'static RequestSeries)>>;

/// A method as a label: the standard ones by name, any other as `OTHER`, so that made-up
/// methods cannot make series without end.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "OTHER",
    }
}

/// The series of requests to `route` (a route template, or `unmatched`) with `method` that
/// answered `status`.
pub(crate) fn request(route: &str, method: &Method, status: u16) -> &'static RequestSeries {
    let method = method_label(method);
    static ALL: OnceLock<RwLock<ByRoute>> = OnceLock::new();
    let all = ALL.get_or_init(Default::default);
    let find = |by: &ByRoute| {
        by.get(route)?
            .iter()
            .find(|(m, s, _)| *m == method && *s == status)
            .map(|(_, _, series)| *series)
    };
    if let Some(series) = find(&all.read().expect("meters lock")) {
        return series;
    }
    let mut by = all.write().expect("meters lock");
    if let Some(series) = find(&by) {
        return series;
    }
    let labels = [
        ("method", method.to_owned()),
        ("route", route.to_owned()),
        ("status", status.to_string()),
    ];
    // Leaked once per label set, as the registry keeps each series for the process's life.
    let series: &'static RequestSeries = Box::leak(Box::new(RequestSeries {
        requests: metrics::counter!("zentoria_http_requests_total", &labels),
        duration_seconds: metrics::histogram!("zentoria_http_request_duration_seconds", &labels),
    }));
    by.entry(route.to_owned())
        .or_default()
        .push((method, status, series));
    series
}

/// The gateway's own-time histograms of `model` (`provider/model`), for whole answers
/// (`[0]`) and streams (`[1]`).
pub(crate) fn gateway_overhead(model: &str) -> Arc<[Histogram; 2]> {
    static ALL: OnceLock<OnceMap<String, Arc<[Histogram; 2]>>> = OnceLock::new();
    ALL.get_or_init(Default::default).get_or_make(model, || {
        let provider = model.split_once('/').map_or(model, |(p, _)| p);
        let series = |stream: &'static str| {
            metrics::histogram!(crate::routes::gateway::OVERHEAD_METRIC,
                "provider" => provider.to_owned(), "model" => model.to_owned(), "stream" => stream)
        };
        Arc::new([series("false"), series("true")])
    })
}
