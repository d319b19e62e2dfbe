//! raft-rs logs through `slog`; this drain forwards its records to `tracing`.

use slog::{Drain, Level, OwnedKVList, Record, KV};

struct TracingDrain;

struct Fields(String);

impl slog::Serializer for Fields {
    fn emit_arguments(&mut self, key: slog::Key, value: &std::fmt::Arguments) -> slog::Result {
        use std::fmt::Write;
        let _ = write!(self.0, " {key}={value}");
        Ok(())
    }
}

impl Drain for TracingDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record, values: &OwnedKVList) -> Result<(), slog::Never> {
        let mut fields = Fields(String::new());
        let _ = record.kv().serialize(record, &mut fields);
        let _ = values.serialize(record, &mut fields);
        let message = record.msg();
        match record.level() {
            Level::Critical | Level::Error => {
                tracing::error!(target: "raft", "{message}{}", fields.0)
            }
            Level::Warning => tracing::warn!(target: "raft", "{message}{}", fields.0),
            Level::Info => tracing::info!(target: "raft", "{message}{}", fields.0),
            Level::Debug => tracing::debug!(target: "raft", "{message}{}", fields.0),
            Level::Trace => tracing::trace!(target: "raft", "{message}{}", fields.0),
        }
        Ok(())
    }
}

pub fn raft_logger() -> slog::Logger {
    slog::Logger::root(TracingDrain.fuse(), slog::o!())
}
