//! The HTTP side of serving: pull recommendations and features, metrics
//! and health. Bound to 127.0.0.1 by default; a pull runs the same logic
//! as a trigger (its request id is `http-<n>`), but its answer goes to the
//! caller, not to the topic.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use eddy_features::metrics::{CONTENT_TYPE, Metrics};
use serde_json::json;

use crate::ServeError;
use crate::engine::{Recommendation, Request};
use crate::metrics::ServeMetrics;
use crate::service::{State, now_ms};

/// The JSON form of a recommendation.
pub fn to_json(r: &Recommendation, emitted_at: i64) -> serde_json::Value {
    json!({
        "request_id": r.request_id,
        "user_id": r.user_id,
        "items": r.items.iter().map(|i| json!({"item": i.item, "score": i.score, "source": i.source})).collect::<Vec<_>>(),
        "model_version": r.model_version,
        "features_as_of": r.features_as_of,
        "as_of_trigger": r.as_of_trigger,
        "fewer_items_because": r.fewer_because,
        "trigger_event_time": r.trigger_event_time,
        "emitted_at": emitted_at,
    })
}

fn recommend(
    state: &Mutex<State>,
    metrics: &ServeMetrics,
    user: &str,
    k: Option<usize>,
) -> Response {
    let mut state = state.lock().expect("poisoned");
    let Some(user) = state.user(user) else {
        return (
            StatusCode::BAD_REQUEST,
            format!(
                "`{user}` is not a user id of this pipeline (ids are {:?})\n",
                state.user_type
            ),
        )
            .into_response();
    };
    state.pulls += 1;
    let request = Request {
        id: format!("http-{}", state.pulls),
        user,
        k: k.unwrap_or(state.engine.default_k),
        ts: state.latest_ts.max(0),
        event: None,
    };
    let State {
        engine,
        models,
        features,
        ..
    } = &mut *state;
    let r = engine.recommend(&request, models, features);
    metrics.sync_ranker(engine.ranker_counts(), engine.impressions_unanswered);
    metrics.feature_store_errors.store(
        features.store_errors.load(Ordering::Relaxed),
        Ordering::Relaxed,
    );
    metrics.http_requests.fetch_add(1, Ordering::Relaxed);
    axum::Json(to_json(&r, now_ms())).into_response()
}

fn features(state: &Mutex<State>, view: &str, key: &str) -> Response {
    let state = state.lock().expect("poisoned");
    if !state.views.iter().any(|v| v.name == view) {
        let known: Vec<&str> = state.views.iter().map(|v| v.name.as_str()).collect();
        return (
            StatusCode::NOT_FOUND,
            format!("unknown view `{view}`; the views are {known:?}\n"),
        )
            .into_response();
    }
    match state.features.row(view, key, &state.views) {
        Some((as_of, values)) => axum::Json(json!({
            "view": view,
            "key": key,
            "as_of": as_of,
            "features": values.into_iter().map(|(n, v)| (n, v.to_json())).collect::<serde_json::Map<_, _>>(),
        }))
        .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            format!("view `{view}` has no row for key `{key}` (yet)\n"),
        )
            .into_response(),
    }
}

/// `GET /v1/recommendations/{user}?k=`: the engine runs on a blocking
/// thread, since it takes the state's lock.
async fn pull(
    state: Arc<Mutex<State>>,
    metrics: Arc<ServeMetrics>,
    user: String,
    query: HashMap<String, String>,
) -> Response {
    let k = match query.get("k").map(|k| k.parse::<usize>()) {
        Some(Ok(k)) => match crate::engine::check_k(k) {
            Ok(k) => Some(k),
            Err(why) => return (StatusCode::BAD_REQUEST, format!("{why}\n")).into_response(),
        },
        Some(Err(_)) => {
            return (StatusCode::BAD_REQUEST, "k must be a positive integer\n").into_response();
        }
        None => None,
    };
    tokio::task::spawn_blocking(move || recommend(&state, &metrics, &user, k))
        .await
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// `/healthz`: ready once every model has loaded; otherwise which have not.
fn health(metrics: &ServeMetrics, state: &Mutex<State>) -> (StatusCode, String) {
    if metrics.ready.load(Ordering::Relaxed) {
        return (StatusCode::OK, "ready\n".to_string());
    }
    let state = state.lock().expect("poisoned");
    let missing: Vec<&String> = state
        .models
        .models
        .iter()
        .filter(|(_, m)| m.version().is_none())
        .map(|(n, _)| n)
        .collect();
    (
        StatusCode::SERVICE_UNAVAILABLE,
        format!("not ready: no update yet for models {missing:?} (is the learner running?)\n"),
    )
}

/// Serves the endpoints on `addr` from a thread of its own; returns the
/// bound address (port 0 picks a free one).
/// `/metrics` renders `registry`, the process's, where the caller has
/// registered `metrics`.
pub fn serve(
    addr: SocketAddr,
    registry: Metrics,
    state: Arc<Mutex<State>>,
    metrics: Arc<ServeMetrics>,
) -> Result<SocketAddr, ServeError> {
    let (s1, m1) = (state.clone(), metrics.clone());
    let s2 = state.clone();
    let m4 = metrics.clone();
    let app = axum::Router::new()
        .route(
            "/v1/recommendations/{user}",
            get(
                move |Path(user): Path<String>, Query(q): Query<HashMap<String, String>>| {
                    pull(s1.clone(), m1.clone(), user, q)
                },
            ),
        )
        .route(
            "/v1/features/{view}/{key}",
            get(move |Path((view, key)): Path<(String, String)>| {
                let s = s2.clone();
                async move { features(&s, &view, &key) }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let body = registry.render();
                async move { ([(header::CONTENT_TYPE, CONTENT_TYPE)], body) }
            }),
        )
        .route(
            "/healthz",
            get(move || {
                let (m, s) = (m4.clone(), state.clone());
                async move { health(&m, &s) }
            }),
        );
    eddy_features::http::spawn(addr, "serve-http", app)
        .map_err(|e| ServeError::Setup(e.to_string()))
}
