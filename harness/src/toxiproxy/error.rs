//! The API's errors, as Toxiproxy 2.x writes them: an HTTP status and the JSON body
//! `{"error": "proxy not found", "status": 404}`. The messages Toxiproxy defines are kept word
//! for word (clients match on them); a detail after a colon says what exactly was wrong.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// An API request that could not be served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// 400: the body is not the JSON the endpoint takes.
    pub fn bad_request_body(detail: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            format!("bad request body: {detail}"),
        )
    }

    /// 400: a field the request needs is absent or empty.
    pub fn missing_field(field: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            format!("missing required field: {field}"),
        )
    }

    /// 400: a toxic's `stream` is neither `upstream` nor `downstream`.
    pub fn invalid_stream(stream: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            format!("stream was invalid, can be either upstream or downstream: `{stream}`"),
        )
    }

    /// 400: a toxic `type` this server does not know.
    pub fn invalid_toxic_type(type_name: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            format!(
                "invalid toxic type: `{type_name}` (expected latency, bandwidth, timeout, \
                 reset_peer, slow_close, slicer or limit_data)"
            ),
        )
    }

    /// 400: a toxic attribute or the toxicity is out of range or unknown.
    pub fn invalid_attribute(detail: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            format!("invalid toxic attribute: {detail}"),
        )
    }

    /// 404
    pub fn proxy_not_found(name: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("proxy not found: `{name}`"))
    }

    /// 404
    pub fn toxic_not_found(name: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("toxic not found: `{name}`"))
    }

    /// 404 for a path the API does not have.
    pub fn no_such_endpoint(path: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("not found: {path}"))
    }

    /// 409
    pub fn proxy_already_exists(name: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            format!("proxy already exists: `{name}`"),
        )
    }

    /// 409
    pub fn toxic_already_exists(name: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            format!("toxic already exists: `{name}`"),
        )
    }

    /// 500: the proxy could not listen on its address (Toxiproxy answers 500 here too).
    pub fn cannot_listen(listen: &str, error: &std::io::Error) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot listen on {listen}: {error}"),
        )
    }

    /// The JSON body Toxiproxy sends with an error.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({ "error": self.message, "status": self.status.as_u16() })
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{} ({})", self.message, self.status.as_u16())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        super::api::json_response(self.status, &self.body())
    }
}
