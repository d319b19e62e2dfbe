//! The REST API, routes and handlers: each handler reads its JSON body, calls the registry, and
//! answers with Toxiproxy's status codes (201 for a created proxy, 204 for a deletion or reset,
//! 200 otherwise) and JSON bodies. Bodies are read here rather than by axum's `Json` extractor so
//! a bad body gets Toxiproxy's JSON error, and a client need not send a `Content-Type`.
//!
//! `PATCH` is taken wherever Toxiproxy's `POST` updates (Toxiproxy 2.1 and later do the same).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::error::ApiError;
use super::registry::{ProxyBody, Registry};
use super::toxic::ToxicBody;

/// What `GET /version` answers.
pub const VERSION: &str = concat!("chronik-bench-", env!("CARGO_PKG_VERSION"));

type Shared = State<Arc<Registry>>;

pub fn router(registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/version", get(version))
        .route("/reset", post(reset))
        .route("/populate", post(populate))
        .route("/proxies", get(list_proxies).post(create_proxy))
        .route(
            "/proxies/{proxy}",
            get(get_proxy)
                .post(update_proxy)
                .patch(update_proxy)
                .delete(delete_proxy),
        )
        .route(
            "/proxies/{proxy}/toxics",
            get(list_toxics).post(create_toxic),
        )
        .route(
            "/proxies/{proxy}/toxics/{toxic}",
            get(get_toxic)
                .post(update_toxic)
                .patch(update_toxic)
                .delete(delete_toxic),
        )
        .fallback(no_such_endpoint)
        .with_state(registry)
}

/// A JSON response.
pub fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn ok(body: &Value) -> Response {
    json_response(StatusCode::OK, body)
}

fn read_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(ApiError::bad_request_body)
}

async fn version() -> Response {
    ok(&json!({ "version": VERSION }))
}

async fn reset(State(registry): Shared) -> Result<StatusCode, ApiError> {
    registry.reset().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn populate(State(registry): Shared, body: Bytes) -> Result<Response, ApiError> {
    let bodies: Vec<ProxyBody> = read_body(&body)?;
    Ok(match registry.populate(bodies).await {
        Ok(proxies) => json_response(StatusCode::CREATED, &json!({ "proxies": proxies })),
        Err((proxies, error)) => json_response(
            StatusCode::BAD_REQUEST,
            &json!({
                "proxies": proxies,
                "error": error.message,
                "status": error.status.as_u16(),
            }),
        ),
    })
}

async fn list_proxies(State(registry): Shared) -> Response {
    ok(&registry.list().await)
}

async fn create_proxy(State(registry): Shared, body: Bytes) -> Result<Response, ApiError> {
    let proxy = registry.create(read_body(&body)?).await?;
    Ok(json_response(StatusCode::CREATED, &proxy))
}

async fn get_proxy(
    State(registry): Shared,
    Path(proxy): Path<String>,
) -> Result<Response, ApiError> {
    Ok(ok(&registry.get(&proxy).await?))
}

async fn update_proxy(
    State(registry): Shared,
    Path(proxy): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    Ok(ok(&registry.update(&proxy, read_body(&body)?).await?))
}

async fn delete_proxy(
    State(registry): Shared,
    Path(proxy): Path<String>,
) -> Result<StatusCode, ApiError> {
    registry.delete(&proxy).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_toxics(
    State(registry): Shared,
    Path(proxy): Path<String>,
) -> Result<Response, ApiError> {
    let toxics = registry
        .with_toxics(&proxy, |toxics| Ok(toxics.views()))
        .await?;
    Ok(ok(&Value::from(toxics)))
}

async fn create_toxic(
    State(registry): Shared,
    Path(proxy): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: ToxicBody = read_body(&body)?;
    let toxic = registry
        .with_toxics(&proxy, |toxics| toxics.add(body).map(|toxic| toxic.view()))
        .await?;
    Ok(ok(&toxic))
}

async fn get_toxic(
    State(registry): Shared,
    Path((proxy, toxic)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let toxic = registry
        .with_toxics(&proxy, |toxics| {
            toxics.get(&toxic).map(|toxic| toxic.view())
        })
        .await?;
    Ok(ok(&toxic))
}

async fn update_toxic(
    State(registry): Shared,
    Path((proxy, toxic)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: ToxicBody = read_body(&body)?;
    let toxic = registry
        .with_toxics(&proxy, |toxics| {
            toxics.update(&toxic, body).map(|toxic| toxic.view())
        })
        .await?;
    Ok(ok(&toxic))
}

async fn delete_toxic(
    State(registry): Shared,
    Path((proxy, toxic)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    registry
        .with_toxics(&proxy, |toxics| toxics.remove(&toxic))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn no_such_endpoint(uri: Uri) -> ApiError {
    ApiError::no_such_endpoint(uri.path())
}
