//! From a key path to a line and column in the scenario's text.
//!
//! `serde_yaml_ng::Value` keeps no positions, but `serde_yaml_ng`'s deserializer stamps an
//! error raised by a visitor with the position of the YAML node being visited. So to find
//! `faults[2].latency`, the text is deserialized again with a probe that walks that path and,
//! on reaching the node, raises a marker error: its location is the node's. Positions come from
//! the same parser that produced the `Value`, so they cannot disagree; a probe runs only for a
//! problem being reported, so a valid scenario pays nothing.
//!
//! A path that is not in the text (a missing key, or a value that came from a merge key)
//! is located at its nearest ancestor that is.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::path::{Anchor, KeyPath, Segment};

/// A one-based line and column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Position {
    pub(crate) line: usize,
    pub(crate) column: usize,
}

const FOUND: &str = "\u{0}chronik-scenario-probe-found";

/// Where `path` (its key or its value, per `anchor`) is in `text`; the nearest located ancestor
/// when it is not there; 1:1 when nothing is.
pub(crate) fn locate(text: &str, path: &KeyPath, anchor: Anchor) -> Position {
    let segments = path.segments();
    for length in (0..=segments.len()).rev() {
        let anchor = if length == segments.len() {
            anchor
        } else {
            Anchor::Value
        };
        if let Some(position) = probe(text, &segments[..length], anchor) {
            return position;
        }
    }
    Position { line: 1, column: 1 }
}

fn probe(text: &str, segments: &[Segment], anchor: Anchor) -> Option<Position> {
    let anchor = match segments.last() {
        Some(Segment::Key(_)) => anchor,
        _ => Anchor::Value,
    };
    let deserializer = serde_yaml_ng::Deserializer::from_str(text);
    let error = Probe { segments, anchor }.deserialize(deserializer).err()?;
    if !error.to_string().contains(FOUND) {
        return None;
    }
    let location = error.location()?;
    Some(Position {
        line: location.line(),
        column: location.column(),
    })
}

/// Walks `segments` from the node it is handed; errors with `FOUND` on the node they end at.
struct Probe<'p> {
    segments: &'p [Segment],
    anchor: Anchor,
}

impl<'de> DeserializeSeed<'de> for Probe<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl Probe<'_> {
    fn here<E: de::Error>(&self) -> Result<(), E> {
        if self.segments.is_empty() {
            Err(E::custom(FOUND))
        } else {
            Ok(())
        }
    }
}

impl<'de> Visitor<'de> for Probe<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any YAML node")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.here()
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.here()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.here()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.here()
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.here()
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.here()
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.here()
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut sequence: A) -> Result<(), A::Error> {
        let Some((Segment::Index(wanted), rest)) = self.segments.split_first() else {
            self.here()?;
            while sequence.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(());
        };
        let mut index = 0;
        loop {
            let more = if index == *wanted {
                let probe = Probe {
                    segments: rest,
                    anchor: self.anchor,
                };
                sequence.next_element_seed(probe)?.is_some()
            } else {
                sequence.next_element::<IgnoredAny>()?.is_some()
            };
            if !more {
                return Ok(());
            }
            index += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((Segment::Key(wanted), rest)) = self.segments.split_first() else {
            self.here()?;
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(());
        };
        let key_probe = || KeyProbe {
            wanted,
            found_is_the_end: rest.is_empty() && self.anchor == Anchor::Key,
        };
        while let Some(matched) = map.next_key_seed(key_probe())? {
            if matched {
                let probe = Probe {
                    segments: rest,
                    anchor: self.anchor,
                };
                map.next_value_seed(probe)?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// Reads one mapping key: whether it is the wanted one, or the `FOUND` error if it is and the
/// problem is about the key itself. Non-string keys compare by their text.
struct KeyProbe<'p> {
    wanted: &'p str,
    found_is_the_end: bool,
}

impl KeyProbe<'_> {
    fn compare<E: de::Error>(&self, key: &str) -> Result<bool, E> {
        match (key == self.wanted, self.found_is_the_end) {
            (true, true) => Err(E::custom(FOUND)),
            (matched, _) => Ok(matched),
        }
    }
}

impl<'de> DeserializeSeed<'de> for KeyProbe<'_> {
    type Value = bool;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeyProbe<'_> {
    type Value = bool;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a mapping key")
    }

    fn visit_bool<E: de::Error>(self, key: bool) -> Result<bool, E> {
        self.compare(&key.to_string())
    }
    fn visit_i64<E: de::Error>(self, key: i64) -> Result<bool, E> {
        self.compare(&key.to_string())
    }
    fn visit_u64<E: de::Error>(self, key: u64) -> Result<bool, E> {
        self.compare(&key.to_string())
    }
    fn visit_f64<E: de::Error>(self, key: f64) -> Result<bool, E> {
        self.compare(&key.to_string())
    }
    fn visit_str<E: de::Error>(self, key: &str) -> Result<bool, E> {
        self.compare(key)
    }
    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        self.compare("null")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, sequence: A) -> Result<bool, A::Error> {
        IgnoredAny.visit_seq(sequence).map(|_| false)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<bool, A::Error> {
        IgnoredAny.visit_map(map).map(|_| false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
name: demo
cluster:
  nodes: 3
faults:
  - { at: 1s, kind: kill, target: random }
  - at: 2s
    kind: latency
    latency: 5ms
";

    fn at(path: KeyPath, anchor: Anchor) -> (usize, usize) {
        let position = locate(TEXT, &path, anchor);
        (position.line, position.column)
    }

    #[test]
    fn finds_keys_values_and_items() {
        let root = KeyPath::root();
        assert_eq!(at(root.key("name"), Anchor::Key), (1, 1));
        assert_eq!(at(root.key("name"), Anchor::Value), (1, 7));
        assert_eq!(at(root.key("cluster").key("nodes"), Anchor::Value), (3, 10));
        let faults = root.key("faults");
        assert_eq!(at(faults.index(0).key("target"), Anchor::Key), (5, 27));
        assert_eq!(at(faults.index(0).key("target"), Anchor::Value), (5, 35));
        assert_eq!(at(faults.index(1), Anchor::Value), (6, 5));
        assert_eq!(at(faults.index(1).key("latency"), Anchor::Key), (8, 5));
    }

    #[test]
    fn falls_back_to_the_nearest_ancestor() {
        let root = KeyPath::root();
        // Missing key: the mapping that should hold it.
        assert_eq!(
            at(root.key("faults").index(1).key("jitter"), Anchor::Key),
            (6, 5)
        );
        assert_eq!(at(root.key("faults").index(7), Anchor::Value), (5, 3));
        assert_eq!(at(root.key("nothing"), Anchor::Key), (1, 1));
    }
}
