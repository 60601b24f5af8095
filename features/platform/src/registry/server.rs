//! `eddy registry serve`: the Confluent Schema Registry REST API over a
//! [`SchemaStore`].
//!
//! Real clients (confluent-kafka, Kafka Connect, kcat's Avro mode) parse the
//! error bodies, so every error answers with Confluent's status and
//! `{"error_code": N, "message": "..."}`. Bodies are read as JSON whatever
//! the content type: clients send `application/vnd.schemaregistry.v1+json`.
//!
//! For operators: `/healthz` answers 200 once the store has read its topic,
//! and `/metrics` exposes Prometheus counters of answered requests by status
//! class plus the number of live subjects.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value as Json, json};

use super::store::{SchemaStore, VersionSpec};
use super::{CompatibilityLevel, ErrorBody, RegistryError};
use crate::metrics::{Family, Kind};

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

type Shared = Arc<SchemaStore>;

/// Serves the registry on `listener` until `shutdown` completes.
pub async fn serve(
    store: Arc<SchemaStore>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    crate::http::serve(listener, router(store), shutdown).await
}

/// Answered requests by status class (1xx..5xx).
#[derive(Default)]
struct Metrics {
    by_class: [AtomicU64; 5],
}

async fn count_requests(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let response = next.run(request).await;
    let class = (response.status().as_u16() / 100).clamp(1, 5) as usize - 1;
    metrics.by_class[class].fetch_add(1, Ordering::Relaxed);
    response
}

/// Errors axum raises itself (a body over the 2 MB limit, a malformed
/// path, a method not allowed) come as plain text; clients parse
/// Confluent's `{"error_code", "message"}` body, so they get one, with the
/// status times 100 as the code (Confluent's scheme: 41300 for 413).
async fn confluent_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    if status.is_success() || is_json {
        return response;
    }
    let text = match axum::body::to_bytes(response.into_body(), 64 * 1024).await {
        Ok(b) => String::from_utf8_lossy(&b).trim().to_string(),
        Err(_) => String::new(),
    };
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    reply(
        status,
        json!({"error_code": u32::from(status.as_u16()) * 100, "message": message}),
    )
}

/// The registry's routes.
pub fn router(store: Arc<SchemaStore>) -> Router {
    let metrics = Arc::new(Metrics::default());
    let for_endpoint = metrics.clone();
    Router::new()
        .route("/healthz", get(|| async { (StatusCode::OK, "ok\n") }))
        .route(
            "/metrics",
            get(move |State(store): State<Shared>| render_metrics(store, for_endpoint.clone())),
        )
        .route("/", get(|| async { reply(StatusCode::OK, json!({})) }))
        .route("/subjects", get(list_subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route(
            "/subjects/{subject}/versions",
            get(list_versions).post(register),
        )
        .route(
            "/subjects/{subject}/versions/{version}",
            get(get_version).delete(delete_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(get_version_schema),
        )
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/schema", get(raw_schema_by_id))
        .route("/schemas/ids/{id}/versions", get(id_versions))
        .route(
            "/schemas/types",
            get(|| async { reply(StatusCode::OK, json!(["AVRO"])) }),
        )
        .route("/config", get(get_global_config).put(put_global_config))
        .route(
            "/config/{subject}",
            get(get_subject_config)
                .put(put_subject_config)
                .delete(delete_subject_config),
        )
        .route(
            "/mode",
            get(|| async { reply(StatusCode::OK, json!({"mode": "READWRITE"})) }),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(check_version),
        )
        .route(
            "/compatibility/subjects/{subject}/versions",
            post(check_all),
        )
        .layer(middleware::from_fn(confluent_errors))
        .layer(middleware::from_fn_with_state(metrics, count_requests))
        .with_state(store)
}

async fn render_metrics(store: Shared, metrics: Arc<Metrics>) -> Response {
    let subjects = match blocking(store, |s| s.list_subjects(false)).await {
        Ok(s) => s.len(),
        Err(resp) => return resp,
    };
    let mut requests = Family::new(
        "eddy_registry_requests_total",
        "HTTP requests answered, by status class.",
        Kind::Counter,
    );
    for (i, n) in metrics.by_class.iter().enumerate() {
        requests = requests.sample(
            vec![("class".to_string(), format!("{}xx", i + 1))],
            n.load(Ordering::Relaxed) as f64,
        );
    }
    let subjects = Family::gauge(
        "eddy_registry_subjects",
        "Subjects with at least one live version.",
        subjects as f64,
    );
    let registry = crate::metrics::Metrics::new();
    registry.register(None, Arc::new(vec![requests, subjects]));
    let out = registry.render();
    let mut resp = (StatusCode::OK, out).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
    );
    resp
}

fn reply(status: StatusCode, body: Json) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    resp
}

fn error_reply(e: RegistryError) -> Response {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status.is_server_error() {
        tracing::error!(error = %e, "registry request failed");
    }
    reply(
        status,
        serde_json::to_value(ErrorBody {
            error_code: e.error_code(),
            message: e.to_string(),
        })
        .expect("ser"),
    )
}

/// Runs a blocking store operation off the async executor.
async fn blocking<T: Send + 'static>(
    store: Shared,
    f: impl FnOnce(&SchemaStore) -> Result<T, RegistryError> + Send + 'static,
) -> Result<T, Response> {
    match tokio::task::spawn_blocking(move || f(&store)).await {
        Ok(r) => r.map_err(error_reply),
        Err(e) => Err(reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error_code": 50001, "message": format!("registry task failed: {e}")}),
        )),
    }
}

/// Unwraps a store result, or returns the error response.
macro_rules! ok_or_reply {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(resp) => return resp,
        }
    };
}

/// Unwraps a request-parsing result, or returns the Confluent error body.
macro_rules! parsed_or_reply {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return error_reply(e),
        }
    };
}

#[derive(Deserialize, Default)]
struct Flags {
    #[serde(default)]
    deleted: bool,
    #[serde(default)]
    permanent: bool,
    #[serde(default, rename = "defaultToGlobal")]
    default_to_global: bool,
    #[serde(default)]
    verbose: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SchemaBody {
    schema: String,
    #[serde(default)]
    schema_type: Option<String>,
    #[serde(default)]
    references: Vec<Json>,
}

fn parse_schema_body(body: &Bytes) -> Result<SchemaBody, RegistryError> {
    let parsed: SchemaBody = serde_json::from_slice(body)
        .map_err(|e| RegistryError::InvalidSchema(format!("request body: {e}")))?;
    if !parsed.references.is_empty() {
        return Err(RegistryError::InvalidSchema(
            "schema references are not supported by eddy's registry; inline the referenced types"
                .into(),
        ));
    }
    Ok(parsed)
}

fn schema_json(r: &super::RegisteredSchema) -> Json {
    json!({"subject": r.subject, "version": r.version, "id": r.id, "schema": r.schema})
}

async fn list_subjects(State(store): State<Shared>, Query(f): Query<Flags>) -> Response {
    let subjects = ok_or_reply!(blocking(store, move |s| s.list_subjects(f.deleted)).await);
    reply(StatusCode::OK, json!(subjects))
}

async fn list_versions(
    State(store): State<Shared>,
    Path(subject): Path<String>,
    Query(f): Query<Flags>,
) -> Response {
    let versions = ok_or_reply!(blocking(store, move |s| s.versions(&subject, f.deleted)).await);
    reply(StatusCode::OK, json!(versions))
}

async fn register(
    State(store): State<Shared>,
    Path(subject): Path<String>,
    body: Bytes,
) -> Response {
    let body = parsed_or_reply!(parse_schema_body(&body));
    let r = ok_or_reply!(
        blocking(store, move |s| s.register_schema(
            &subject,
            &body.schema,
            body.schema_type.as_deref()
        ))
        .await
    );
    reply(StatusCode::OK, schema_json(&r))
}

async fn lookup(
    State(store): State<Shared>,
    Path(subject): Path<String>,
    Query(f): Query<Flags>,
    body: Bytes,
) -> Response {
    let body = parsed_or_reply!(parse_schema_body(&body));
    let r =
        ok_or_reply!(blocking(store, move |s| s.lookup(&subject, &body.schema, f.deleted)).await);
    reply(StatusCode::OK, schema_json(&r))
}

async fn delete_subject(
    State(store): State<Shared>,
    Path(subject): Path<String>,
    Query(f): Query<Flags>,
) -> Response {
    let versions =
        ok_or_reply!(blocking(store, move |s| s.delete_subject(&subject, f.permanent)).await);
    reply(StatusCode::OK, json!(versions))
}

async fn get_version(
    State(store): State<Shared>,
    Path((subject, version)): Path<(String, String)>,
    Query(f): Query<Flags>,
) -> Response {
    let spec = parsed_or_reply!(VersionSpec::parse(&version));
    let r = ok_or_reply!(blocking(store, move |s| s.version(&subject, spec, f.deleted)).await);
    reply(StatusCode::OK, schema_json(&r))
}

async fn get_version_schema(
    State(store): State<Shared>,
    Path((subject, version)): Path<(String, String)>,
    Query(f): Query<Flags>,
) -> Response {
    let spec = parsed_or_reply!(VersionSpec::parse(&version));
    let r = ok_or_reply!(blocking(store, move |s| s.version(&subject, spec, f.deleted)).await);
    let raw: Json = serde_json::from_str(&r.schema).unwrap_or(Json::String(r.schema));
    reply(StatusCode::OK, raw)
}

async fn delete_version(
    State(store): State<Shared>,
    Path((subject, version)): Path<(String, String)>,
    Query(f): Query<Flags>,
) -> Response {
    let spec = parsed_or_reply!(VersionSpec::parse(&version));
    let v = ok_or_reply!(
        blocking(store, move |s| s.delete_version(
            &subject,
            spec,
            f.permanent
        ))
        .await
    );
    reply(StatusCode::OK, json!(v))
}

fn parse_id(id: &str) -> Result<u32, RegistryError> {
    id.parse()
        .map_err(|_| RegistryError::SchemaNotFound(id.to_string()))
}

async fn schema_by_id(State(store): State<Shared>, Path(id): Path<String>) -> Response {
    let id = parsed_or_reply!(parse_id(&id));
    let text = ok_or_reply!(blocking(store, move |s| s.by_id(id)).await);
    reply(StatusCode::OK, json!({"schema": text}))
}

async fn raw_schema_by_id(State(store): State<Shared>, Path(id): Path<String>) -> Response {
    let id = parsed_or_reply!(parse_id(&id));
    let text = ok_or_reply!(blocking(store, move |s| s.by_id(id)).await);
    reply(
        StatusCode::OK,
        serde_json::from_str(&text).unwrap_or(Json::String(text)),
    )
}

async fn id_versions(State(store): State<Shared>, Path(id): Path<String>) -> Response {
    let id = parsed_or_reply!(parse_id(&id));
    let pairs = ok_or_reply!(blocking(store, move |s| s.id_versions(id)).await);
    reply(
        StatusCode::OK,
        json!(
            pairs
                .into_iter()
                .map(|(s, v)| json!({"subject": s, "version": v}))
                .collect::<Vec<_>>()
        ),
    )
}

fn parse_level(body: &Bytes) -> Result<CompatibilityLevel, RegistryError> {
    #[derive(Deserialize)]
    struct ConfigBody {
        compatibility: String,
    }
    let parsed: ConfigBody = serde_json::from_slice(body)
        .map_err(|e| RegistryError::InvalidCompatibilityLevel(format!("request body: {e}")))?;
    parsed.compatibility.parse()
}

async fn get_global_config(State(store): State<Shared>) -> Response {
    let level = ok_or_reply!(blocking(store, |s| s.level(None, true)).await);
    reply(StatusCode::OK, json!({"compatibilityLevel": level}))
}

async fn put_global_config(State(store): State<Shared>, body: Bytes) -> Response {
    let level = parsed_or_reply!(parse_level(&body));
    let level = ok_or_reply!(blocking(store, move |s| s.set_level(None, level)).await);
    reply(StatusCode::OK, json!({"compatibility": level}))
}

async fn get_subject_config(
    State(store): State<Shared>,
    Path(subject): Path<String>,
    Query(f): Query<Flags>,
) -> Response {
    let level =
        ok_or_reply!(blocking(store, move |s| s.level(Some(&subject), f.default_to_global)).await);
    reply(StatusCode::OK, json!({"compatibilityLevel": level}))
}

async fn put_subject_config(
    State(store): State<Shared>,
    Path(subject): Path<String>,
    body: Bytes,
) -> Response {
    let level = parsed_or_reply!(parse_level(&body));
    let level = ok_or_reply!(blocking(store, move |s| s.set_level(Some(&subject), level)).await);
    reply(StatusCode::OK, json!({"compatibility": level}))
}

async fn delete_subject_config(
    State(store): State<Shared>,
    Path(subject): Path<String>,
) -> Response {
    let level = ok_or_reply!(blocking(store, move |s| s.delete_level(&subject)).await);
    reply(StatusCode::OK, json!({"compatibilityLevel": level}))
}

fn compatibility_reply(problems: Vec<String>, verbose: bool) -> Response {
    let mut body = json!({"is_compatible": problems.is_empty()});
    if verbose {
        body["messages"] = json!(problems);
    }
    reply(StatusCode::OK, body)
}

async fn check_version(
    State(store): State<Shared>,
    Path((subject, version)): Path<(String, String)>,
    Query(f): Query<Flags>,
    body: Bytes,
) -> Response {
    let spec = parsed_or_reply!(VersionSpec::parse(&version));
    let body = parsed_or_reply!(parse_schema_body(&body));
    let problems = ok_or_reply!(
        blocking(store, move |s| s.check_compatibility(
            &subject,
            Some(spec),
            &body.schema
        ))
        .await
    );
    compatibility_reply(problems, f.verbose)
}

async fn check_all(
    State(store): State<Shared>,
    Path(subject): Path<String>,
    Query(f): Query<Flags>,
    body: Bytes,
) -> Response {
    let body = parsed_or_reply!(parse_schema_body(&body));
    let problems = ok_or_reply!(
        blocking(store, move |s| s.check_compatibility(
            &subject,
            None,
            &body.schema
        ))
        .await
    );
    compatibility_reply(problems, f.verbose)
}
