//! The server's proxies by name, and the operations the API offers on them. One lock serves
//! every operation in turn (as Toxiproxy's collection lock does), so an operation that waits for
//! connections to close finishes before the next one looks.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Mutex;

use super::error::ApiError;
use super::proxy::Proxy;
use super::toxic::ToxicList;

/// Where a proxy created without `listen` listens.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:0";

/// The JSON body that creates or updates a proxy. Other fields (`toxics`, as clients send back
/// what they read) are ignored, as Toxiproxy does.
#[derive(Debug, Default, Deserialize)]
pub struct ProxyBody {
    pub name: Option<String>,
    pub listen: Option<String>,
    pub upstream: Option<String>,
    pub enabled: Option<bool>,
}

/// A new proxy's fields, checked.
struct NewProxy {
    name: String,
    listen: String,
    upstream: String,
    enabled: bool,
}

impl NewProxy {
    fn check(body: ProxyBody) -> Result<Self, ApiError> {
        let name = body.name.filter(|name| !name.is_empty());
        let upstream = body.upstream.filter(|upstream| !upstream.is_empty());
        Ok(Self {
            name: name.ok_or_else(|| ApiError::missing_field("name"))?,
            upstream: upstream.ok_or_else(|| ApiError::missing_field("upstream"))?,
            listen: body
                .listen
                .filter(|listen| !listen.is_empty())
                .unwrap_or_else(|| DEFAULT_LISTEN.to_string()),
            enabled: body.enabled.unwrap_or(true),
        })
    }

    async fn start(self) -> Result<Proxy, ApiError> {
        let mut proxy = Proxy::new(self.name, self.listen, self.upstream);
        if self.enabled {
            proxy.start().await?;
        }
        Ok(proxy)
    }
}

#[derive(Debug, Default)]
pub struct Registry {
    proxies: Mutex<BTreeMap<String, Proxy>>,
}

impl Registry {
    /// Every proxy by name, with its toxics.
    pub async fn list(&self) -> Value {
        let proxies = self.proxies.lock().await;
        proxies
            .iter()
            .map(|(name, proxy)| (name.clone(), proxy.view()))
            .collect::<serde_json::Map<_, _>>()
            .into()
    }

    /// Creates (and unless `enabled` is false, starts) a proxy.
    pub async fn create(&self, body: ProxyBody) -> Result<Value, ApiError> {
        let new = NewProxy::check(body)?;
        let mut proxies = self.proxies.lock().await;
        if proxies.contains_key(&new.name) {
            return Err(ApiError::proxy_already_exists(&new.name));
        }
        let name = new.name.clone();
        let proxy = new.start().await?;
        let view = proxy.view();
        proxies.insert(name, proxy);
        Ok(view)
    }

    /// Creates each proxy, keeping one of the same name with the same addresses and replacing
    /// one with others (Toxiproxy's populate). On an error, also what was done before it.
    pub async fn populate(
        &self,
        bodies: Vec<ProxyBody>,
    ) -> Result<Vec<Value>, (Vec<Value>, ApiError)> {
        let mut proxies = self.proxies.lock().await;
        let mut views = Vec::new();
        for body in bodies {
            let new = match NewProxy::check(body) {
                Ok(new) => new,
                Err(error) => return Err((views, error)),
            };
            if let Some(existing) = proxies.get_mut(&new.name) {
                if existing.listen() == new.listen && existing.upstream() == new.upstream {
                    views.push(existing.view());
                    continue;
                }
                existing.stop().await;
                proxies.remove(&new.name);
            }
            let name = new.name.clone();
            match new.start().await {
                Ok(proxy) => {
                    views.push(proxy.view());
                    proxies.insert(name, proxy);
                }
                Err(error) => return Err((views, error)),
            }
        }
        Ok(views)
    }

    pub async fn get(&self, name: &str) -> Result<Value, ApiError> {
        let proxies = self.proxies.lock().await;
        let proxy = proxies
            .get(name)
            .ok_or_else(|| ApiError::proxy_not_found(name))?;
        Ok(proxy.view())
    }

    /// Changes a proxy's `listen`, `upstream` and `enabled` (those given).
    pub async fn update(&self, name: &str, body: ProxyBody) -> Result<Value, ApiError> {
        if body.upstream.as_deref() == Some("") {
            return Err(ApiError::missing_field("upstream"));
        }
        if body.listen.as_deref() == Some("") {
            return Err(ApiError::missing_field("listen"));
        }
        let mut proxies = self.proxies.lock().await;
        let proxy = proxies
            .get_mut(name)
            .ok_or_else(|| ApiError::proxy_not_found(name))?;
        proxy
            .update(body.listen, body.upstream, body.enabled)
            .await?;
        Ok(proxy.view())
    }

    /// Stops and removes a proxy.
    pub async fn delete(&self, name: &str) -> Result<(), ApiError> {
        let mut proxies = self.proxies.lock().await;
        let mut proxy = proxies
            .remove(name)
            .ok_or_else(|| ApiError::proxy_not_found(name))?;
        proxy.stop().await;
        Ok(())
    }

    /// Enables every proxy and removes every toxic.
    pub async fn reset(&self) -> Result<(), ApiError> {
        let mut proxies = self.proxies.lock().await;
        let mut first_error = None;
        for proxy in proxies.values_mut() {
            proxy.toxics_mut().clear();
            if let Err(error) = proxy.start().await {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Disables every proxy (the server is shutting down).
    pub async fn stop_all(&self) {
        let mut proxies = self.proxies.lock().await;
        for proxy in proxies.values_mut() {
            proxy.stop().await;
        }
    }

    /// Runs `operation` on the toxics of the proxy `name`.
    pub async fn with_toxics<T>(
        &self,
        name: &str,
        operation: impl FnOnce(&mut ToxicList) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let mut proxies = self.proxies.lock().await;
        let proxy = proxies
            .get_mut(name)
            .ok_or_else(|| ApiError::proxy_not_found(name))?;
        operation(proxy.toxics_mut())
    }
}
