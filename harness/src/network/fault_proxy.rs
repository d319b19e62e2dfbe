//! `FaultProxy`: the bench's handle on a Toxiproxy API, the built-in server's or a real
//! Toxiproxy's, reached only through the REST API. It is blocking (its HTTP clients are
//! reqwest's blocking ones): create, call and drop it on a plain thread, or from async code
//! inside `spawn_blocking`, never directly on a runtime's thread.
//!
//! The `toxiproxy_rust` client (0.1.6) does the calls it serves: creating a proxy (`populate`,
//! after deleting one of the same name, so a leftover proxy cannot keep stale toxics), listing
//! and deleting proxies, `reset`, and the health check. It ignores HTTP status codes, so after
//! `reset` and the deletions this module reads the proxies back to check the outcome. The thin
//! `rest` wrapper does the rest, because the client cannot:
//! - add a toxic: it has no `reset_peer`, names every toxic `<type>_<stream>` (the bench names
//!   one per fault, so two faults on a link can coexist and be removed one by one), takes
//!   attributes as `u32`, and panics (rather than returns an error) when a request fails;
//! - remove one toxic: it can only remove all of a proxy's toxics;
//! - enable or disable a proxy and know it worked: `Proxy::enable` ignores the status, so a
//!   proxy that could not listen again would read as enabled.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use serde_json::json;
use toxiproxy_rust::client::Client;
use toxiproxy_rust::proxy::ProxyPack;

use super::rest::RestApi;
use super::toxic_body::toxic_body;
use crate::scenario::{Stream, Toxic};
use crate::toxiproxy::BuiltinToxiproxy;

/// How many times creating a proxy is tried before its error is reported.
const CREATE_ATTEMPTS: u32 = 10;
/// The pause before creating a proxy again.
const CREATE_RETRY_DELAY_MS: u64 = 500;

/// A Toxiproxy API and the proxies the bench made on it.
pub struct FaultProxy {
    client: Client,
    api_address: SocketAddr,
    rest: RestApi,
    url: String,
    description: String,
    /// Last, so it shuts down after the clients are gone.
    _builtin: Option<BuiltinToxiproxy>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("FaultProxy")
            .field("url", &self.url)
            .field("description", &self.description)
            .finish_non_exhaustive()
    }
}

/// `http://host:port`, `host:port` (with an optional trailing `/`) as a socket address.
fn api_address(url: &str) -> anyhow::Result<SocketAddr> {
    let trimmed = url.trim();
    let host_and_port = match trimmed.split_once("://") {
        Some(("http", rest)) => rest,
        Some((scheme, _)) => bail!("`{url}`: the Toxiproxy API is plain http, not {scheme}"),
        None => trimmed,
    };
    let host_and_port = host_and_port.trim_end_matches('/');
    if host_and_port.is_empty() || host_and_port.contains('/') {
        bail!("`{url}` is not a Toxiproxy address: expected http://HOST:PORT or HOST:PORT");
    }
    let addresses: Vec<SocketAddr> = host_and_port
        .to_socket_addrs()
        .with_context(|| format!("`{url}` is not a Toxiproxy address: expected HOST:PORT"))?
        .collect();
    // Toxiproxy listens on IPv4 by default; `localhost` may resolve to ::1 first.
    addresses
        .iter()
        .find(|address| address.is_ipv4())
        .or(addresses.first())
        .copied()
        .ok_or_else(|| anyhow!("`{url}`: the host has no address"))
}

/// Names go into URL paths: the client cannot escape `/`, `?`, `#` or `%` in them.
fn check_name(what: &str, name: &str) -> anyhow::Result<()> {
    let bad = |c: char| c.is_whitespace() || c.is_control() || matches!(c, '/' | '?' | '#' | '%');
    if name.is_empty() || name.chars().any(bad) {
        bail!("`{name}` is not a {what} name: it must be non-empty, without spaces, `/`, `?`, `#` or `%`");
    }
    Ok(())
}

impl FaultProxy {
    /// Starts the built-in server on a free loopback port and connects to it.
    pub fn builtin() -> anyhow::Result<Self> {
        let server = BuiltinToxiproxy::start(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let mut proxy = Self::connect(server.api_address(), server.url(), "built-in")?;
        proxy._builtin = Some(server);
        Ok(proxy)
    }

    /// Connects to a running Toxiproxy at `url` (`http://127.0.0.1:8474` or `127.0.0.1:8474`).
    pub fn external(url: &str) -> anyhow::Result<Self> {
        let address = api_address(url)?;
        let proxy = Self::connect(address, format!("http://{address}"), url)?;
        if !proxy.client.is_running() {
            bail!("no Toxiproxy answers at {url}: start one (toxiproxy-server, or chronik-bench toxiproxy) or leave the URL out to use the built-in one");
        }
        Ok(proxy)
    }

    fn connect(address: SocketAddr, url: String, description: &str) -> anyhow::Result<Self> {
        Ok(Self {
            client: Client::new(address),
            api_address: address,
            rest: RestApi::new(address)?,
            url,
            description: description.to_string(),
            _builtin: None,
        })
    }

    /// Names the proxy in reports (for example, where it runs) instead of its URL.
    pub fn described_as(mut self, description: &str) -> Self {
        self.description = description.to_string();
        self
    }

    /// `built-in`, or the URL given to `external` (or what `described_as` said).
    pub fn description(&self) -> String {
        self.description.clone()
    }

    /// The API's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn failed(&self, doing: String) -> impl FnOnce(String) -> anyhow::Error + '_ {
        move |error| anyhow!("Toxiproxy at {}: {doing}: {error}", self.url)
    }

    /// Creates an enabled proxy `name` from `listen` (`127.0.0.1:0` for any free port) to
    /// `upstream`, replacing any proxy of that name; returns the address it listens on.
    pub fn create_proxy(
        &self,
        name: &str,
        listen: &str,
        upstream: &str,
    ) -> anyhow::Result<SocketAddr> {
        check_name("proxy", name)?;
        if let Ok(existing) = self.client.find_proxy(name) {
            existing
                .delete()
                .map_err(self.failed(format!("cannot delete the old proxy `{name}`")))?;
        }
        let doing = format!("cannot create proxy `{name}` (listen {listen}, upstream {upstream})");
        // `populate` replaces a proxy of the same name, so a request that failed is safe to
        // send again, on a new connection. Through Docker's port forwarding to a proxy
        // container it has failed now and then with the connection closed under it.
        let mut attempt = 1;
        let created = loop {
            let pack = ProxyPack::new(name.to_string(), listen.to_string(), upstream.to_string());
            let fresh;
            let client = if attempt == 1 {
                &self.client
            } else {
                fresh = Client::new(self.api_address);
                &fresh
            };
            match client.populate(vec![pack]) {
                Ok(created) => break created,
                Err(error) if attempt >= CREATE_ATTEMPTS => {
                    return Err(self.failed(doing.clone())(error));
                }
                Err(_) => {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(CREATE_RETRY_DELAY_MS));
                }
            }
        };
        let proxy = created
            .iter()
            .find(|proxy| proxy.proxy_pack.name == name)
            .ok_or_else(|| anyhow!("Toxiproxy at {}: {doing}: it was not created", self.url))?;
        let bound = &proxy.proxy_pack.listen;
        bound
            .to_socket_addrs()
            .ok()
            .and_then(|mut addresses| addresses.next())
            .ok_or_else(|| {
                anyhow!(
                    "Toxiproxy at {}: proxy `{name}` listens on `{bound}`, not an address",
                    self.url
                )
            })
    }

    /// Enables (listens, accepts) or disables (closes the listener and every connection) a proxy.
    pub fn set_enabled(&self, name: &str, enabled: bool) -> anyhow::Result<()> {
        check_name("proxy", name)?;
        let proxy = self
            .rest
            .post(&["proxies", name], &json!({ "enabled": enabled }))
            .with_context(|| format!("Toxiproxy at {}", self.url))?;
        if proxy.get("enabled").and_then(|value| value.as_bool()) != Some(enabled) {
            bail!(
                "Toxiproxy at {}: proxy `{name}` did not become enabled={enabled}: {proxy}",
                self.url
            );
        }
        Ok(())
    }

    /// Points a proxy at another upstream. As in Toxiproxy, this restarts the proxy (its open
    /// connections close); whether it is enabled and its toxics stay as they were.
    pub fn set_upstream(&self, name: &str, upstream: &str) -> anyhow::Result<()> {
        check_name("proxy", name)?;
        let proxy = self
            .rest
            .post(&["proxies", name], &json!({ "upstream": upstream }))
            .with_context(|| format!("Toxiproxy at {}", self.url))?;
        if proxy.get("upstream").and_then(|value| value.as_str()) != Some(upstream) {
            bail!(
                "Toxiproxy at {}: proxy `{name}` did not take the upstream {upstream}: {proxy}",
                self.url
            );
        }
        Ok(())
    }

    /// Adds the toxic `toxic_name` to a proxy; it acts at once, on open connections too.
    pub fn add_toxic(
        &self,
        proxy: &str,
        toxic_name: &str,
        toxic: &Toxic,
        stream: Stream,
        toxicity: f64,
    ) -> anyhow::Result<()> {
        check_name("proxy", proxy)?;
        check_name("toxic", toxic_name)?;
        let body = toxic_body(toxic_name, toxic, stream, toxicity)
            .with_context(|| format!("toxic `{toxic_name}` on proxy `{proxy}`"))?;
        self.rest
            .post(&["proxies", proxy, "toxics"], &body)
            .with_context(|| format!("Toxiproxy at {}", self.url))?;
        Ok(())
    }

    /// Removes the toxic `toxic_name` from a proxy.
    pub fn remove_toxic(&self, proxy: &str, toxic_name: &str) -> anyhow::Result<()> {
        check_name("proxy", proxy)?;
        check_name("toxic", toxic_name)?;
        self.rest
            .delete(&["proxies", proxy, "toxics", toxic_name])
            .with_context(|| format!("Toxiproxy at {}", self.url))
    }

    /// Enables every proxy and removes every toxic, then checks that it is so.
    pub fn reset(&self) -> anyhow::Result<()> {
        self.client
            .reset()
            .map_err(self.failed("cannot reset".to_string()))?;
        let proxies = self
            .client
            .all()
            .map_err(self.failed("cannot list the proxies".to_string()))?;
        let mut left: Vec<String> = proxies
            .values()
            .filter(|proxy| !proxy.proxy_pack.enabled || !proxy.proxy_pack.toxics.is_empty())
            .map(|proxy| proxy.proxy_pack.name.clone())
            .collect();
        left.sort();
        if !left.is_empty() {
            bail!(
                "Toxiproxy at {}: after a reset these proxies are still disabled or have toxics: {}",
                self.url,
                left.join(", ")
            );
        }
        Ok(())
    }

    /// Deletes every proxy, then checks that none is left.
    pub fn delete_all(&self) -> anyhow::Result<()> {
        let list = || {
            self.client
                .all()
                .map_err(self.failed("cannot list the proxies".to_string()))
        };
        for (name, proxy) in list()? {
            proxy
                .delete()
                .map_err(self.failed(format!("cannot delete proxy `{name}`")))?;
        }
        let mut left: Vec<String> = list()?.into_keys().collect();
        left.sort();
        if !left.is_empty() {
            bail!(
                "Toxiproxy at {}: proxies left after deleting them all: {}",
                self.url,
                left.join(", ")
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_addresses_take_both_forms() {
        let expected: SocketAddr = "127.0.0.1:8474".parse().unwrap();
        for url in [
            "http://127.0.0.1:8474",
            "127.0.0.1:8474",
            "http://127.0.0.1:8474/",
            " 127.0.0.1:8474 ",
        ] {
            assert_eq!(api_address(url).unwrap(), expected, "{url}");
        }
        for (url, says) in [
            ("https://127.0.0.1:8474", "plain http"),
            ("http://127.0.0.1:8474/api", "not a Toxiproxy address"),
            ("127.0.0.1", "expected HOST:PORT"),
            ("", "not a Toxiproxy address"),
        ] {
            let error = api_address(url).unwrap_err().to_string();
            assert!(error.contains(says), "{url}: {error}");
        }
    }

    #[test]
    fn the_runner_can_share_it_between_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<FaultProxy>();
    }

    #[test]
    fn names_that_cannot_go_into_a_path_are_refused() {
        assert!(check_name("proxy", "clients->3").is_ok());
        assert!(check_name("proxy", "node-1_to.2").is_ok());
        for name in ["", "a/b", "a b", "a?b", "a#b", "a%b"] {
            assert!(check_name("proxy", name).is_err(), "{name}");
        }
    }
}
