//! A fault proxy that speaks Toxiproxy's REST API (2.x: the same paths, JSON fields, status
//! codes and error bodies), so the bench needs nothing installed, and a real Toxiproxy can
//! stand in for it. It runs on tokio, in the bench's process (`BuiltinToxiproxy`) or on its own
//! (`chronik-bench toxiproxy --listen ADDR`).
//!
//! ```text
//! api (axum routes) -> registry (proxies by name, one lock) -> proxy (listener, enable/disable)
//!   -> connection (dial upstream, two links, close/reset) -> link (reader -> bounded channel
//!   -> writer) -> link_toxics (what the toxics do to the next piece of data)
//! toxic: types, attributes and a proxy's toxic list, published to connections by a watch channel
//! ```
//!
//! Why not the `noxious` crate (1.0.4, a Rust port of Toxiproxy's core): it has no `reset_peer`
//! toxic, which scenarios use; changing toxics at run time goes through `ToxicEvent` and
//! `listen_toxic_events`, which are `#[doc(hidden)]` (not its public API) and rebuild every
//! connection's links on each change; its listener trait cannot report the address a `:0` listen
//! was bound to, which the API must answer with; and it pins tokio-util 0.6 and has not been
//! released since 2021. What it would save is the toxics' arithmetic, so the proxy is written
//! here on tokio, with toxics that read the proxy's current list while data flows.
//!
//! Semantics worth knowing: a disabled proxy closes its listener and every connection (a
//! partition is a set of disabled proxies); a toxic added or removed acts on open connections at
//! once; `toxicity` is drawn per connection and toxic; every buffer between a connection's two
//! sockets is bounded (`link::IN_FLIGHT_BYTES_MAX`). `link_toxics` says what each toxic does and
//! how several compose.
//!
//! Deliberately left out: Toxiproxy's `noop` toxic, its `-config` file and metrics endpoints,
//! half-closed connections (either side closing closes both, as in Toxiproxy), and the order
//! of toxics on one stream (they compose in a fixed order, see `link_toxics`).

mod api;
mod connection;
mod error;
mod link;
mod link_toxics;
mod proxy;
mod registry;
mod server;
mod toxic;

pub use server::{run_in_foreground, serve, BuiltinToxiproxy, ToxiproxyArgs, DEFAULT_API_ADDRESS};
