//! Run reports: the model (`report.json`) and its renderings.

pub mod model;

pub use model::*;
