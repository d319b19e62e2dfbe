//! The built-in server's REST API as Toxiproxy clients see it: paths, status codes, JSON fields
//! and error bodies, spoken to with plain HTTP.

use std::net::TcpListener;

use chronik_bench::toxiproxy::BuiltinToxiproxy;
use reqwest::blocking::{Client, Response};
use reqwest::StatusCode;
use serde_json::{json, Value};

struct Api {
    _server: BuiltinToxiproxy,
    client: Client,
    url: String,
}

impl Api {
    fn start() -> Self {
        let server = BuiltinToxiproxy::start("127.0.0.1:0".parse().unwrap()).unwrap();
        let url = server.url();
        Self {
            _server: server,
            client: Client::new(),
            url,
        }
    }

    fn get(&self, path: &str) -> Response {
        self.client
            .get(format!("{}{path}", self.url))
            .send()
            .unwrap()
    }

    fn post(&self, path: &str, body: &str) -> Response {
        let url = format!("{}{path}", self.url);
        self.client.post(url).body(body.to_string()).send().unwrap()
    }

    fn delete(&self, path: &str) -> Response {
        self.client
            .delete(format!("{}{path}", self.url))
            .send()
            .unwrap()
    }
}

/// The status and JSON body of a response.
fn answer(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|error| panic!("{error}: {text}"))
    };
    (status, body)
}

/// A Toxiproxy error: the status, and the message starts with `message`.
fn assert_error(response: Response, status: u16, message: &str) {
    let (got, body) = answer(response);
    assert_eq!(got.as_u16(), status, "{body}");
    assert_eq!(body["status"], status, "{body}");
    let text = body["error"].as_str().unwrap();
    assert!(text.starts_with(message), "expected `{message}`: {text}");
}

fn upstream() -> String {
    // An address nothing dials in these tests.
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string()
}

#[test]
fn proxies_are_created_read_updated_and_deleted() {
    let api = Api::start();
    let (status, body) = answer(api.get("/version"));
    assert_eq!(status, StatusCode::OK);
    assert!(body["version"].is_string());

    let upstream = upstream();
    let create = json!({"name": "one", "listen": "127.0.0.1:0", "upstream": upstream}).to_string();
    let (status, created) = answer(api.post("/proxies", &create));
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(created["name"], "one");
    assert_eq!(created["upstream"], upstream.as_str());
    assert_eq!(created["enabled"], true);
    assert_eq!(created["toxics"], json!([]));
    let listen = created["listen"].as_str().unwrap();
    assert!(!listen.ends_with(":0"), "{listen}");
    assert_error(api.post("/proxies", &create), 409, "proxy already exists");

    let (status, all) = answer(api.get("/proxies"));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(all["one"], created);
    assert_eq!(answer(api.get("/proxies/one")).1, created);

    let (status, updated) = answer(api.post("/proxies/one", r#"{"enabled": false}"#));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(updated["enabled"], false);
    assert_eq!(updated["listen"], listen, "the bound port is kept");
    let (_, enabled) = answer(api.post("/proxies/one", r#"{"enabled": true}"#));
    assert_eq!(enabled["listen"], listen);

    assert_eq!(api.delete("/proxies/one").status(), StatusCode::NO_CONTENT);
    assert_error(api.get("/proxies/one"), 404, "proxy not found");
    assert_error(api.delete("/proxies/one"), 404, "proxy not found");
    assert_eq!(answer(api.get("/proxies")).1, json!({}));
}

#[test]
fn bad_proxy_requests_get_toxiproxy_errors() {
    let api = Api::start();
    assert_error(api.post("/proxies", "{not json"), 400, "bad request body");
    assert_error(
        api.post("/proxies", r#"{"name": "x", "enabled": "yes"}"#),
        400,
        "bad request body",
    );
    assert_error(
        api.post("/proxies", r#"{"upstream": "127.0.0.1:1"}"#),
        400,
        "missing required field: name",
    );
    assert_error(
        api.post("/proxies", r#"{"name": "x"}"#),
        400,
        "missing required field: upstream",
    );
    let bad_listen = r#"{"name": "x", "listen": "nowhere", "upstream": "127.0.0.1:1"}"#;
    assert_error(
        api.post("/proxies", bad_listen),
        500,
        "cannot listen on nowhere",
    );
    assert_error(
        api.post("/proxies/missing", r#"{"enabled": true}"#),
        404,
        "proxy not found",
    );
    assert_error(api.get("/nothing/here"), 404, "not found");
}

#[test]
fn populate_creates_keeps_and_replaces() {
    let api = Api::start();
    let upstream = upstream();
    let proxies = json!([
        {"name": "a", "listen": "127.0.0.1:0", "upstream": upstream},
        {"name": "b", "listen": "127.0.0.1:0", "upstream": upstream, "enabled": false, "toxics": []},
    ]);
    let (status, body) = answer(api.post("/populate", &proxies.to_string()));
    assert_eq!(status, StatusCode::CREATED);
    let listed = body["proxies"].as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1]["enabled"], false);

    // The same addresses keep the proxy; a missing field stops at that proxy.
    let a = &listed[0];
    let again = json!([
        {"name": "a", "listen": a["listen"], "upstream": upstream},
        {"name": "c"},
    ]);
    let (status, body) = answer(api.post("/populate", &again.to_string()));
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["proxies"], json!([a]));
    assert_eq!(body["status"], 400);
    assert!(body["error"]
        .as_str()
        .unwrap()
        .starts_with("missing required field"));
    assert_error(
        api.post("/populate", r#"{"name": "a"}"#),
        400,
        "bad request body",
    );
}

#[test]
fn toxics_are_created_read_updated_and_deleted() {
    let api = Api::start();
    let create = json!({"name": "p", "upstream": upstream()}).to_string();
    assert_eq!(api.post("/proxies", &create).status(), StatusCode::CREATED);

    // Toxiproxy's defaults: downstream, toxicity 1, named <type>_<stream>, attributes 0.
    let (status, toxic) = answer(api.post(
        "/proxies/p/toxics",
        r#"{"type": "latency", "attributes": {"latency": 100}}"#,
    ));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        toxic,
        json!({
            "name": "latency_downstream",
            "type": "latency",
            "stream": "downstream",
            "toxicity": 1.0,
            "attributes": {"latency": 100, "jitter": 0},
        })
    );
    let reset_peer =
        json!({"name": "rst", "type": "reset_peer", "stream": "upstream", "toxicity": 0.5});
    let (status, _) = answer(api.post("/proxies/p/toxics", &reset_peer.to_string()));
    assert_eq!(status, StatusCode::OK);
    assert_error(
        api.post("/proxies/p/toxics", &reset_peer.to_string()),
        409,
        "toxic already exists",
    );

    let (_, toxics) = answer(api.get("/proxies/p/toxics"));
    assert_eq!(toxics.as_array().unwrap().len(), 2);
    let (_, proxy) = answer(api.get("/proxies/p"));
    assert_eq!(proxy["toxics"], toxics);

    let (status, updated) = answer(api.post(
        "/proxies/p/toxics/latency_downstream",
        r#"{"attributes": {"jitter": 10}}"#,
    ));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(updated["attributes"], json!({"latency": 100, "jitter": 10}));
    assert_eq!(
        answer(api.get("/proxies/p/toxics/latency_downstream")).1,
        updated
    );

    assert_eq!(
        api.delete("/proxies/p/toxics/rst").status(),
        StatusCode::NO_CONTENT
    );
    assert_error(api.get("/proxies/p/toxics/rst"), 404, "toxic not found");
    assert_error(api.delete("/proxies/p/toxics/rst"), 404, "toxic not found");

    assert_eq!(api.post("/reset", "").status(), StatusCode::NO_CONTENT);
    assert_eq!(answer(api.get("/proxies/p/toxics")).1, json!([]));
}

#[test]
fn bad_toxic_requests_get_toxiproxy_errors() {
    let api = Api::start();
    let create = json!({"name": "p", "upstream": upstream()}).to_string();
    assert_eq!(api.post("/proxies", &create).status(), StatusCode::CREATED);
    for (body, status, message) in [
        ("[]", 400, "bad request body"),
        (r#"{"attributes": {}}"#, 400, "invalid toxic type"),
        (r#"{"type": "noise"}"#, 400, "invalid toxic type"),
        (
            r#"{"type": "latency", "stream": "sideways"}"#,
            400,
            "stream was invalid",
        ),
        (
            r#"{"type": "latency", "toxicity": 2}"#,
            400,
            "invalid toxic attribute",
        ),
        (
            r#"{"type": "latency", "attributes": {"latancy": 1}}"#,
            400,
            "invalid toxic attribute",
        ),
        (
            r#"{"type": "bandwidth", "attributes": {"rate": -1}}"#,
            400,
            "invalid toxic attribute",
        ),
        (
            r#"{"type": "slicer", "attributes": {"average_size": 0}}"#,
            400,
            "invalid toxic attribute",
        ),
    ] {
        assert_error(api.post("/proxies/p/toxics", body), status, message);
    }
    assert_error(
        api.post("/proxies/missing/toxics", r#"{"type": "latency"}"#),
        404,
        "proxy not found",
    );
    assert_error(api.get("/proxies/missing/toxics"), 404, "proxy not found");
    assert_error(
        api.post("/proxies/p/toxics/missing", "{}"),
        404,
        "toxic not found",
    );
}
