//! Toxics as the API sees them: their types and attributes (Toxiproxy's names and units), how a
//! JSON body becomes a validated toxic, and a proxy's list of toxics, which it publishes to its
//! connections on every change (a `watch` channel: a connection sees the latest list, which is
//! how toxics added or removed at run time reach connections that are already open).
//!
//! Attributes are whole non-negative numbers, as in Toxiproxy; one left out is 0. Unlike
//! Toxiproxy, an attribute the type does not have is an error (a misspelt `latancy` would
//! otherwise be a silent no-op), and so are values that cannot work (a slicer with
//! `average_size` 0, a duration longer than `MAX_DURATION_MS`).

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio::sync::watch;

use super::error::ApiError;

/// The longest duration an attribute may hold: one day.
pub const MAX_DURATION_MS: u64 = 24 * 60 * 60 * 1000;

/// Which way through a proxy: `upstream` is what the client sends, `downstream` what comes back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Upstream,
    Downstream,
}

impl Stream {
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        match text {
            "upstream" => Ok(Self::Upstream),
            "downstream" => Ok(Self::Downstream),
            _ => Err(ApiError::invalid_stream(text)),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Upstream => "upstream",
            Self::Downstream => "downstream",
        }
    }
}

/// A toxic's type with its attributes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToxicKind {
    /// Delay data by `latency_ms` ± `jitter_ms`.
    Latency { latency_ms: u64, jitter_ms: u64 },
    /// Pass at most `rate_kilobytes_per_second` (1 KB = 1000 bytes); 0 passes everything.
    Bandwidth { rate_kilobytes_per_second: u64 },
    /// Drop all data; close the connection after `timeout_ms` (0: never).
    Timeout { timeout_ms: u64 },
    /// On the first data, wait `timeout_ms`, then reset the connection (TCP RST).
    ResetPeer { timeout_ms: u64 },
    /// When the sending side closes, wait `delay_ms` before closing.
    SlowClose { delay_ms: u64 },
    /// Write data in pieces of `average_size_bytes` ± `size_variation_bytes`, `delay_us` apart.
    Slicer {
        average_size_bytes: u64,
        size_variation_bytes: u64,
        delay_us: u64,
    },
    /// Close the connection once `bytes` have passed.
    LimitData { bytes: u64 },
}

/// Every toxic type with the attributes it takes, in Toxiproxy's names.
const TYPES: [(&str, &[&str]); 7] = [
    ("latency", &["latency", "jitter"]),
    ("bandwidth", &["rate"]),
    ("timeout", &["timeout"]),
    ("reset_peer", &["timeout"]),
    ("slow_close", &["delay"]),
    ("slicer", &["average_size", "size_variation", "delay"]),
    ("limit_data", &["bytes"]),
];

impl ToxicKind {
    /// Toxiproxy's name for the type.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Latency { .. } => "latency",
            Self::Bandwidth { .. } => "bandwidth",
            Self::Timeout { .. } => "timeout",
            Self::ResetPeer { .. } => "reset_peer",
            Self::SlowClose { .. } => "slow_close",
            Self::Slicer { .. } => "slicer",
            Self::LimitData { .. } => "limit_data",
        }
    }

    /// Reads a toxic of type `type_name` from its `attributes`, checking each.
    pub fn from_attributes(
        type_name: &str,
        attributes: &Map<String, Value>,
    ) -> Result<Self, ApiError> {
        let Some((_, names)) = TYPES.iter().find(|(name, _)| *name == type_name) else {
            return Err(ApiError::invalid_toxic_type(type_name));
        };
        if let Some(unknown) = attributes.keys().find(|key| !names.contains(&key.as_str())) {
            return Err(ApiError::invalid_attribute(format!(
                "`{unknown}` is not an attribute of {type_name} (expected {})",
                names.join(", ")
            )));
        }
        let number = |name: &str| -> Result<u64, ApiError> {
            match attributes.get(name) {
                None => Ok(0),
                Some(value) => value.as_u64().ok_or_else(|| {
                    ApiError::invalid_attribute(format!(
                        "{type_name} `{name}` must be a whole number from 0, not {value}"
                    ))
                }),
            }
        };
        let duration_ms = |name: &str| -> Result<u64, ApiError> {
            let value = number(name)?;
            if value > MAX_DURATION_MS {
                return Err(ApiError::invalid_attribute(format!(
                    "{type_name} `{name}` is {value} ms, above the limit of {MAX_DURATION_MS} ms"
                )));
            }
            Ok(value)
        };
        let kind = match type_name {
            "latency" => Self::Latency {
                latency_ms: duration_ms("latency")?,
                jitter_ms: duration_ms("jitter")?,
            },
            "bandwidth" => Self::Bandwidth {
                rate_kilobytes_per_second: number("rate")?,
            },
            "timeout" => Self::Timeout {
                timeout_ms: duration_ms("timeout")?,
            },
            "reset_peer" => Self::ResetPeer {
                timeout_ms: duration_ms("timeout")?,
            },
            "slow_close" => Self::SlowClose {
                delay_ms: duration_ms("delay")?,
            },
            "slicer" => {
                let average_size_bytes = number("average_size")?;
                let size_variation_bytes = number("size_variation")?;
                let delay_us = number("delay")?;
                if average_size_bytes == 0 {
                    return Err(ApiError::invalid_attribute(
                        "slicer `average_size` must be at least 1",
                    ));
                }
                if size_variation_bytes >= average_size_bytes {
                    return Err(ApiError::invalid_attribute(format!(
                        "slicer `size_variation` ({size_variation_bytes}) must be below \
                         `average_size` ({average_size_bytes})"
                    )));
                }
                if delay_us > MAX_DURATION_MS * 1000 {
                    return Err(ApiError::invalid_attribute(format!(
                        "slicer `delay` is {delay_us} us, above the limit of {MAX_DURATION_MS} ms"
                    )));
                }
                Self::Slicer {
                    average_size_bytes,
                    size_variation_bytes,
                    delay_us,
                }
            }
            "limit_data" => Self::LimitData {
                bytes: number("bytes")?,
            },
            _ => return Err(ApiError::invalid_toxic_type(type_name)),
        };
        Ok(kind)
    }

    /// The attributes in Toxiproxy's names and units, every one of the type.
    pub fn attributes(&self) -> Map<String, Value> {
        let pairs: Vec<(&str, u64)> = match *self {
            Self::Latency {
                latency_ms,
                jitter_ms,
            } => vec![("latency", latency_ms), ("jitter", jitter_ms)],
            Self::Bandwidth {
                rate_kilobytes_per_second,
            } => vec![("rate", rate_kilobytes_per_second)],
            Self::Timeout { timeout_ms } | Self::ResetPeer { timeout_ms } => {
                vec![("timeout", timeout_ms)]
            }
            Self::SlowClose { delay_ms } => vec![("delay", delay_ms)],
            Self::Slicer {
                average_size_bytes,
                size_variation_bytes,
                delay_us,
            } => vec![
                ("average_size", average_size_bytes),
                ("size_variation", size_variation_bytes),
                ("delay", delay_us),
            ],
            Self::LimitData { bytes } => vec![("bytes", bytes)],
        };
        pairs
            .into_iter()
            .map(|(name, value)| (name.to_string(), Value::from(value)))
            .collect()
    }
}

/// One toxic on a proxy.
#[derive(Clone, Debug, PartialEq)]
pub struct Toxic {
    /// Unique within the server for the toxic's life, so a connection can tell a toxic that was
    /// removed and added again under the same name from one that stayed.
    pub id: u64,
    /// Changes on every update; a connection draws the toxicity again when it does.
    pub revision: u64,
    pub name: String,
    pub stream: Stream,
    /// The probability, 0 to 1, that the toxic acts on a given connection.
    pub toxicity: f64,
    pub kind: ToxicKind,
}

impl Toxic {
    /// The toxic as the API shows it.
    pub fn view(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.kind.type_name(),
            "stream": self.stream.name(),
            "toxicity": self.toxicity,
            "attributes": self.kind.attributes(),
        })
    }
}

/// The JSON body that creates or updates a toxic. Fields other than these are ignored, as
/// Toxiproxy does (clients send back what they read).
#[derive(Debug, Default, Deserialize)]
pub struct ToxicBody {
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub type_name: Option<String>,
    pub stream: Option<String>,
    pub toxicity: Option<f64>,
    pub attributes: Option<Map<String, Value>>,
}

fn check_toxicity(toxicity: f64) -> Result<f64, ApiError> {
    if (0.0..=1.0).contains(&toxicity) {
        Ok(toxicity)
    } else {
        Err(ApiError::invalid_attribute(format!(
            "`toxicity` must be from 0 to 1, not {toxicity}"
        )))
    }
}

/// What a proxy's connections see: the toxics at one moment.
pub type ToxicSnapshot = Arc<[Toxic]>;

/// A proxy's toxics, in the order they were added, published to its connections on change.
#[derive(Debug)]
pub struct ToxicList {
    toxics: Vec<Toxic>,
    publisher: watch::Sender<ToxicSnapshot>,
}

/// Ids and revisions for every toxic of the server.
static NEXT_TOXIC_NUMBER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn next_number() -> u64 {
    NEXT_TOXIC_NUMBER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl Default for ToxicList {
    fn default() -> Self {
        Self {
            toxics: Vec::new(),
            publisher: watch::Sender::new(Arc::from(Vec::new())),
        }
    }
}

impl ToxicList {
    /// A receiver that always holds the current toxics.
    pub fn subscribe(&self) -> watch::Receiver<ToxicSnapshot> {
        self.publisher.subscribe()
    }

    pub fn views(&self) -> Vec<Value> {
        self.toxics.iter().map(Toxic::view).collect()
    }

    pub fn get(&self, name: &str) -> Result<&Toxic, ApiError> {
        self.toxics
            .iter()
            .find(|toxic| toxic.name == name)
            .ok_or_else(|| ApiError::toxic_not_found(name))
    }

    /// Adds a toxic: `type` is required; `stream` defaults to downstream, `toxicity` to 1 and
    /// `name` to `<type>_<stream>`, as in Toxiproxy.
    pub fn add(&mut self, body: ToxicBody) -> Result<&Toxic, ApiError> {
        let type_name = body.type_name.unwrap_or_default();
        let kind = ToxicKind::from_attributes(&type_name, &body.attributes.unwrap_or_default())?;
        let stream = match body.stream.as_deref() {
            None | Some("") => Stream::Downstream,
            Some(text) => Stream::parse(text)?,
        };
        let toxicity = check_toxicity(body.toxicity.unwrap_or(1.0))?;
        let name = match body.name {
            Some(name) if !name.is_empty() => name,
            _ => format!("{type_name}_{}", stream.name()),
        };
        if self.toxics.iter().any(|toxic| toxic.name == name) {
            return Err(ApiError::toxic_already_exists(&name));
        }
        let number = next_number();
        self.toxics.push(Toxic {
            id: number,
            revision: number,
            name,
            stream,
            toxicity,
            kind,
        });
        self.publish();
        Ok(self.toxics.last().expect("just pushed"))
    }

    /// Updates a toxic's `toxicity` and attributes (those given; the others keep their values).
    /// Its name, type and stream do not change, as in Toxiproxy.
    pub fn update(&mut self, name: &str, body: ToxicBody) -> Result<&Toxic, ApiError> {
        let index = self
            .toxics
            .iter()
            .position(|toxic| toxic.name == name)
            .ok_or_else(|| ApiError::toxic_not_found(name))?;
        let current = &self.toxics[index];
        let mut attributes = current.kind.attributes();
        attributes.extend(body.attributes.unwrap_or_default());
        let kind = ToxicKind::from_attributes(current.kind.type_name(), &attributes)?;
        let toxicity = check_toxicity(body.toxicity.unwrap_or(current.toxicity))?;
        let toxic = &mut self.toxics[index];
        toxic.kind = kind;
        toxic.toxicity = toxicity;
        toxic.revision = next_number();
        self.publish();
        Ok(&self.toxics[index])
    }

    pub fn remove(&mut self, name: &str) -> Result<(), ApiError> {
        let before = self.toxics.len();
        self.toxics.retain(|toxic| toxic.name != name);
        if self.toxics.len() == before {
            return Err(ApiError::toxic_not_found(name));
        }
        self.publish();
        Ok(())
    }

    pub fn clear(&mut self) {
        if !self.toxics.is_empty() {
            self.toxics.clear();
            self.publish();
        }
    }

    fn publish(&self) {
        self.publisher.send_replace(Arc::from(self.toxics.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attributes(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn every_type_reads_its_attributes_and_shows_them_back() {
        for (type_name, given) in [
            ("latency", json!({"latency": 200, "jitter": 50})),
            ("bandwidth", json!({"rate": 100})),
            ("timeout", json!({"timeout": 0})),
            ("reset_peer", json!({"timeout": 10})),
            ("slow_close", json!({"delay": 300})),
            (
                "slicer",
                json!({"average_size": 64, "size_variation": 8, "delay": 100}),
            ),
            ("limit_data", json!({"bytes": 1000})),
        ] {
            let kind = ToxicKind::from_attributes(type_name, &attributes(given.clone())).unwrap();
            assert_eq!(kind.type_name(), type_name);
            assert_eq!(Value::Object(kind.attributes()), given);
        }
    }

    #[test]
    fn missing_attributes_are_zero() {
        assert_eq!(
            ToxicKind::from_attributes("latency", &Map::new()),
            Ok(ToxicKind::Latency {
                latency_ms: 0,
                jitter_ms: 0
            })
        );
    }

    #[test]
    fn bad_attributes_are_rejected_with_the_reason() {
        for (type_name, given, says) in [
            ("latancy", json!({}), "invalid toxic type"),
            (
                "latency",
                json!({"latancy": 1}),
                "`latancy` is not an attribute of latency",
            ),
            ("latency", json!({"latency": -1}), "whole number from 0"),
            ("latency", json!({"latency": 1.5}), "whole number from 0"),
            ("latency", json!({"latency": "1"}), "whole number from 0"),
            (
                "latency",
                json!({"latency": MAX_DURATION_MS + 1}),
                "above the limit",
            ),
            ("slicer", json!({"average_size": 0}), "at least 1"),
            (
                "slicer",
                json!({"average_size": 8, "size_variation": 8}),
                "below",
            ),
        ] {
            let error = ToxicKind::from_attributes(type_name, &attributes(given)).unwrap_err();
            assert_eq!(error.status.as_u16(), 400);
            assert!(error.message.contains(says), "{type_name}: {error}");
        }
    }

    #[test]
    fn the_list_names_toxics_like_toxiproxy_and_refuses_duplicates() {
        let mut list = ToxicList::default();
        let receiver = list.subscribe();
        let body = || ToxicBody {
            type_name: Some("latency".into()),
            ..ToxicBody::default()
        };
        let added = list.add(body()).unwrap();
        assert_eq!(added.name, "latency_downstream");
        assert_eq!(added.stream, Stream::Downstream);
        assert_eq!(added.toxicity, 1.0);
        assert_eq!(list.add(body()).unwrap_err().status.as_u16(), 409);
        assert_eq!(receiver.borrow().len(), 1);

        let update = ToxicBody {
            toxicity: Some(0.5),
            attributes: Some(attributes(json!({"jitter": 5}))),
            ..ToxicBody::default()
        };
        let updated = list.update("latency_downstream", update).unwrap();
        assert_eq!(updated.toxicity, 0.5);
        assert_eq!(
            updated.kind,
            ToxicKind::Latency {
                latency_ms: 0,
                jitter_ms: 5
            }
        );
        let bad_toxicity = ToxicBody {
            toxicity: Some(1.5),
            ..ToxicBody::default()
        };
        assert!(list.update("latency_downstream", bad_toxicity).is_err());
        assert!(list.remove("latency_downstream").is_ok());
        assert_eq!(
            list.remove("latency_downstream")
                .unwrap_err()
                .status
                .as_u16(),
            404
        );
        assert!(receiver.borrow().is_empty());
    }
}
