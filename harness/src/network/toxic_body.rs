//! A scenario's toxic as the JSON body Toxiproxy takes: its type name and attributes in
//! Toxiproxy's units (durations in whole milliseconds, the slicer's delay in whole
//! microseconds). A duration that is not whole in its unit is an error rather than rounded, and
//! so is a value above `u32::MAX`, the most `toxiproxy_rust` reads back.

use std::time::Duration;

use anyhow::{bail, ensure};
use serde_json::{json, Map, Value};

use crate::scenario::{Stream, Toxic};

/// The body of `POST /proxies/{proxy}/toxics`.
pub fn toxic_body(
    name: &str,
    toxic: &Toxic,
    stream: Stream,
    toxicity: f64,
) -> anyhow::Result<Value> {
    ensure!(
        (0.0..=1.0).contains(&toxicity),
        "toxicity {toxicity} is not between 0 and 1"
    );
    let stream = match stream {
        Stream::Upstream => "upstream",
        Stream::Downstream => "downstream",
    };
    Ok(json!({
        "name": name,
        "type": toxic.kind().name(),
        "stream": stream,
        "toxicity": toxicity,
        "attributes": attributes(toxic)?,
    }))
}

fn attributes(toxic: &Toxic) -> anyhow::Result<Map<String, Value>> {
    let pairs = match toxic {
        Toxic::Latency { latency, jitter } => vec![
            ("latency", milliseconds("latency", *latency)?),
            ("jitter", milliseconds("jitter", *jitter)?),
        ],
        Toxic::Bandwidth { rate } => vec![("rate", *rate)],
        Toxic::Timeout { timeout } | Toxic::ResetPeer { timeout } => {
            vec![("timeout", milliseconds("timeout", *timeout)?)]
        }
        Toxic::SlowClose { delay } => vec![("delay", milliseconds("delay", *delay)?)],
        Toxic::Slicer {
            average_size,
            size_variation,
            delay,
        } => vec![
            ("average_size", *average_size),
            ("size_variation", *size_variation),
            ("delay", microseconds("delay", *delay)?),
        ],
        Toxic::LimitData { bytes } => vec![("bytes", *bytes)],
    };
    pairs
        .into_iter()
        .map(|(name, value)| {
            ensure!(
                value <= u64::from(u32::MAX),
                "{} `{name}` is {value}, above the limit of {}",
                toxic.kind().name(),
                u32::MAX
            );
            Ok((name.to_string(), Value::from(value)))
        })
        .collect()
}

fn milliseconds(name: &str, duration: Duration) -> anyhow::Result<u64> {
    if duration.subsec_nanos() % 1_000_000 != 0 {
        bail!("`{name}` {duration:?} is not a whole number of milliseconds");
    }
    Ok(u64::try_from(duration.as_millis())?)
}

fn microseconds(name: &str, duration: Duration) -> anyhow::Result<u64> {
    if duration.subsec_nanos() % 1_000 != 0 {
        bail!("`{name}` {duration:?} is not a whole number of microseconds");
    }
    Ok(u64::try_from(duration.as_micros())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_become_toxiproxy_units() {
        let slicer = Toxic::Slicer {
            average_size: 64,
            size_variation: 8,
            delay: Duration::from_micros(250),
        };
        assert_eq!(
            toxic_body("cut", &slicer, Stream::Upstream, 0.5).unwrap(),
            json!({
                "name": "cut",
                "type": "slicer",
                "stream": "upstream",
                "toxicity": 0.5,
                "attributes": {"average_size": 64, "size_variation": 8, "delay": 250},
            })
        );
        let latency = Toxic::Latency {
            latency: Duration::from_secs(2),
            jitter: Duration::from_millis(5),
        };
        let body = toxic_body("slow", &latency, Stream::Downstream, 1.0).unwrap();
        assert_eq!(body["attributes"], json!({"latency": 2000, "jitter": 5}));
        assert_eq!(body["stream"], "downstream");
    }

    #[test]
    fn values_toxiproxy_cannot_take_are_errors() {
        let latency = Toxic::Latency {
            latency: Duration::from_micros(1500),
            jitter: Duration::ZERO,
        };
        let error = toxic_body("x", &latency, Stream::Upstream, 1.0).unwrap_err();
        assert!(
            error.to_string().contains("whole number of milliseconds"),
            "{error}"
        );
        let limit = Toxic::LimitData {
            bytes: u64::from(u32::MAX) + 1,
        };
        assert!(toxic_body("x", &limit, Stream::Upstream, 1.0).is_err());
        let reset = Toxic::ResetPeer {
            timeout: Duration::ZERO,
        };
        assert!(toxic_body("x", &reset, Stream::Upstream, 1.5).is_err());
    }
}
