//! Key paths (`faults[2].latency`, `workload.producers[0].config["linger.ms"]`): how an error
//! names the place it is about, and how `locate` finds that place in the text.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Segment {
    Key(String),
    Index(usize),
}

/// A path from the document's root to one key or list item. The root is the empty path.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct KeyPath {
    segments: Vec<Segment>,
}

impl KeyPath {
    pub(crate) fn root() -> Self {
        Self::default()
    }

    pub(crate) fn key(&self, key: &str) -> Self {
        let mut segments = self.segments.clone();
        segments.push(Segment::Key(key.to_string()));
        Self { segments }
    }

    pub(crate) fn index(&self, index: usize) -> Self {
        let mut segments = self.segments.clone();
        segments.push(Segment::Index(index));
        Self { segments }
    }

    pub(crate) fn segments(&self) -> &[Segment] {
        &self.segments
    }
}

/// Keys made only of these characters are written bare; others are quoted in brackets.
fn is_bare_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl fmt::Display for KeyPath {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (position, segment) in self.segments.iter().enumerate() {
            match segment {
                Segment::Key(key) if is_bare_key(key) => {
                    if position > 0 {
                        formatter.write_str(".")?;
                    }
                    formatter.write_str(key)?;
                }
                Segment::Key(key) => write!(formatter, "[{key:?}]")?,
                Segment::Index(index) => write!(formatter, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// Which token of a mapping entry a problem points at: the key itself (an unknown key) or the
/// value under it (a bad value). List items and the root only have a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Anchor {
    Key,
    Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_like_an_accessor() {
        let path = KeyPath::root().key("faults").index(2).key("latency");
        assert_eq!(path.to_string(), "faults[2].latency");
        let config = KeyPath::root()
            .key("workload")
            .key("producers")
            .index(0)
            .key("config")
            .key("linger.ms");
        assert_eq!(
            config.to_string(),
            "workload.producers[0].config[\"linger.ms\"]"
        );
        let groups = KeyPath::root()
            .key("faults")
            .index(1)
            .key("groups")
            .index(0)
            .index(1);
        assert_eq!(groups.to_string(), "faults[1].groups[0][1]");
        assert_eq!(KeyPath::root().to_string(), "");
    }
}
