//! The service's HTTP side (axum): `/healthz`, `/readyz`, `/metrics`
//! (Prometheus text), a read-only JSON API and the dashboard at `/`, all
//! read from the published [`telemetry::Snapshot`]; a series' evaluation
//! history is asked of the service loop (it owns the engine) over a channel.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::get;
use tokio::sync::{mpsc, oneshot, watch};

use crate::telemetry::EvalPoint;
use crate::telemetry::{self, Shared};

/// A request for one series' evaluation history, answered by the service loop.
pub type HistoryRequest = (u32, oneshot::Sender<Option<Vec<EvalPoint>>>);

#[derive(Clone)]
struct AppState {
    snapshot: Shared,
    history: mpsc::Sender<HistoryRequest>,
    config_toml: std::sync::Arc<String>,
    max_series_metrics: usize,
    unhealthy_after_ms: i64,
}

const DASHBOARD: &str = include_str!("http/dashboard.html");

/// Binds `listen` and serves until `stop` turns true. Returns the bound
/// address (port 0 picks a free one).
pub async fn serve(
    http: &crate::config::HttpConfig,
    snapshot: Shared,
    history: mpsc::Sender<HistoryRequest>,
    config_toml: String,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(&http.listen).await?;
    let addr = listener.local_addr()?;
    let state = AppState {
        snapshot,
        history,
        config_toml: std::sync::Arc::new(config_toml),
        max_series_metrics: http.max_series_metrics,
        unhealthy_after_ms: http.unhealthy_after.as_millis(),
    };
    let app = Router::new()
        .route("/", get(|| async { Html(DASHBOARD) }))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/status", get(status))
        .route("/api/series", get(series))
        .route("/api/series/{id}/history", get(history_of))
        .route("/api/alerts", get(alerts))
        .route("/api/incidents", get(incidents))
        .route("/api/feedback", get(feedback))
        .route("/api/versions", get(versions))
        .route("/api/actions", get(actions))
        .route("/api/config", get(config))
        .with_state(state);
    tokio::spawn(async move {
        let shutdown = async move {
            while !*stop.borrow() {
                if stop.changed().await.is_err() {
                    break;
                }
            }
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "http server failed");
        }
    });
    Ok(addr)
}

/// Healthy while the service loop turns: it turns at least four times a
/// second when all is well; stuck on one message (a send that never
/// succeeds, say) for `http.unhealthy_after`, the service is unhealthy, and
/// an orchestrator restarts it.
async fn healthz(State(s): State<AppState>) -> Response {
    let last = s.snapshot.last_beat();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    if last > 0 && now - last > s.unhealthy_after_ms {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "unhealthy: the service loop has not turned for {} s\n",
                (now - last) / 1000
            ),
        )
            .into_response();
    }
    (StatusCode::OK, "ok\n").into_response()
}

async fn readyz(State(s): State<AppState>) -> Response {
    let snap = s.snapshot.get();
    if snap.ready {
        (StatusCode::OK, "ready\n").into_response()
    } else if !snap.missing_topics.is_empty() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "not ready: input topic(s) missing: {}\n",
                snap.missing_topics.join(", ")
            ),
        )
            .into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no partitions assigned and restored yet\n",
        )
            .into_response()
    }
}

async fn metrics(State(s): State<AppState>) -> Response {
    let body = telemetry::prometheus(&s.snapshot.get(), s.max_series_metrics);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// Counters, lag and readiness: the snapshot less its series and alerts.
async fn status(State(s): State<AppState>) -> Response {
    let snap = s.snapshot.get();
    let mut v = serde_json::to_value(&*snap).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.remove("series");
        o.remove("recent_alerts");
        o.remove("incidents");
        o.remove("feedback");
        o.remove("versions");
        o.remove("recent_actions");
    }
    Json(v).into_response()
}

async fn series(State(s): State<AppState>) -> Response {
    Json(s.snapshot.get().series.clone()).into_response()
}

async fn history_of(State(s): State<AppState>, Path(id): Path<u32>) -> Response {
    let (tx, rx) = oneshot::channel();
    if s.history.send((id, tx)).await.is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, "service stopping\n").into_response();
    }
    match rx.await {
        Ok(Some(points)) => Json(points).into_response(),
        Ok(None) => (StatusCode::NOT_FOUND, "no such series\n").into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "service stopping\n").into_response(),
    }
}

/// The open incidents, each as its latest event reads.
async fn incidents(State(s): State<AppState>) -> Response {
    Json(s.snapshot.get().incidents.clone()).into_response()
}

/// Feedback verdicts on incidents, per verdict and root (test, feature, cause).
async fn feedback(State(s): State<AppState>) -> Response {
    Json(s.snapshot.get().feedback.clone()).into_response()
}

/// Models with candidate versions: the comparison with production per slice.
async fn versions(State(s): State<AppState>) -> Response {
    Json(s.snapshot.get().versions.clone()).into_response()
}

/// The newest action events (release decisions, retrain requests).
async fn actions(State(s): State<AppState>) -> Response {
    Json(s.snapshot.get().recent_actions.clone()).into_response()
}

async fn alerts(State(s): State<AppState>) -> Response {
    Json(s.snapshot.get().recent_alerts.clone()).into_response()
}

async fn config(State(s): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        s.config_toml.as_str().to_string(),
    )
        .into_response()
}
