//! The bench's side of network faults: `FaultProxy` drives a Toxiproxy REST API (the built-in
//! server of `crate::toxiproxy`, or a real Toxiproxy given its URL) and nothing else, so both
//! behave the same to the runner. It creates the proxies that links go through, disables them
//! to cut links, and adds and removes the scenario's toxics.
//!
//! Module map: `fault_proxy` (the interface, and which calls go through `toxiproxy_rust`),
//! `rest` (a thin REST client for what `toxiproxy_rust` lacks), `toxic_body` (a scenario toxic
//! in Toxiproxy's JSON and units).

mod fault_proxy;
mod rest;
mod toxic_body;

pub use fault_proxy::FaultProxy;
