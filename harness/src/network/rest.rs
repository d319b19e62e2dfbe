//! A thin client of the Toxiproxy REST API for what `toxiproxy_rust` lacks (see `FaultProxy`):
//! one blocking request, its status checked, the server's JSON `error` message carried into the
//! error. Path segments (proxy and toxic names) are percent-encoded.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{anyhow, Context};
use reqwest::blocking::{Client, Response};
use reqwest::{Method, Url};
use serde_json::Value;

/// How long one API request may take.
pub const REQUEST_TIMEOUT_MS: u64 = 30_000;

#[derive(Debug)]
pub struct RestApi {
    client: Client,
    base: Url,
}

impl RestApi {
    pub fn new(address: SocketAddr) -> anyhow::Result<Self> {
        let client = Client::builder()
            .timeout(Duration::from_millis(REQUEST_TIMEOUT_MS))
            .build()
            .context("cannot build an HTTP client")?;
        let base = Url::parse(&format!("http://{address}/"))?;
        Ok(Self { client, base })
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("an http URL has a path")
            .clear()
            .extend(segments);
        url
    }

    /// `POST /<segments...>` with a JSON body; the answer's JSON body.
    pub fn post(&self, segments: &[&str], body: &Value) -> anyhow::Result<Value> {
        let response = self.send(Method::POST, segments, Some(body))?;
        response
            .json()
            .with_context(|| format!("POST {}: the answer is not JSON", self.url(segments).path()))
    }

    /// `DELETE /<segments...>`.
    pub fn delete(&self, segments: &[&str]) -> anyhow::Result<()> {
        self.send(Method::DELETE, segments, None).map(drop)
    }

    fn send(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<&Value>,
    ) -> anyhow::Result<Response> {
        let url = self.url(segments);
        let mut request = self.client.request(method.clone(), url.clone());
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        let response = request
            .send()
            .with_context(|| format!("{method} {url}: no answer"))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response.text().unwrap_or_default();
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|body| {
                body.get("error")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .unwrap_or(text);
        Err(anyhow!("{method} {}: {status}: {message}", url.path()))
    }
}
