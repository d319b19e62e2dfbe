//! The fault proxy container's side of a run: connecting to its API, creating every link's
//! proxy, and pointing the proxies into a node at it as it starts and stops.

use std::time::{Duration, Instant};

use anyhow::Context;

use super::wiring::Wiring;
use crate::cluster::proxy_name;
use crate::network::FaultProxy;
use crate::scenario::NodeId;

/// How long the proxy container's API may take to answer.
const PROXY_START_TIMEOUT_MS: u64 = 15_000;

/// Waits for the proxy container's API, then connects to it.
pub fn connect_to_proxy(wiring: &Wiring, container: &str) -> anyhow::Result<FaultProxy> {
    let url = format!("http://127.0.0.1:{}", wiring.proxy_api_port);
    let deadline = Instant::now() + Duration::from_millis(PROXY_START_TIMEOUT_MS);
    loop {
        match FaultProxy::external(&url) {
            Ok(proxy) => {
                return Ok(proxy.described_as(&format!("built-in, in container {container}")))
            }
            Err(error) if Instant::now() >= deadline => {
                return Err(error.context(format!("the fault proxy container {container}")))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Creates every link's proxy, each pointing at its node as down (no node runs yet).
pub fn create_link_proxies(proxy: &FaultProxy, wiring: &Wiring) -> anyhow::Result<()> {
    for (link, listen) in wiring.proxies() {
        proxy
            .create_proxy(&proxy_name(&link), &listen, &Wiring::upstream(&link, None))
            .with_context(|| format!("creating the fault proxy for {link}"))?;
    }
    Ok(())
}

/// Points the proxies of every link into `node` at its address, or (`None`) at a port that
/// refuses connections while it is down.
pub fn point_links_at(
    proxy: &FaultProxy,
    wiring: &Wiring,
    node: NodeId,
    address: Option<&str>,
) -> anyhow::Result<()> {
    for link in wiring.links_into(node) {
        proxy
            .set_upstream(&proxy_name(&link), &Wiring::upstream(&link, address))
            .with_context(|| format!("pointing {link} at node {node}"))?;
    }
    Ok(())
}
