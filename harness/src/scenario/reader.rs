//! Reading a `serde_yaml_ng::Value` into typed values while collecting every problem with its
//! key path. A reader returns `None` after recording why, so a section reads all its fields
//! (reporting each bad one) before giving up.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::time::Duration;

use serde_yaml_ng::{Mapping, Value};

use super::duration;
use super::issues::{closest, describe, key_text, Issues};
use super::path::KeyPath;

/// A reader of one value: records an issue and returns `None` when the value is bad.
pub(crate) type Read<'v, T> = &'v dyn Fn(&mut Issues, &Value, &KeyPath) -> Option<T>;

/// The fields of one mapping, read by name.
pub(crate) struct Fields<'v> {
    map: &'v Mapping,
    path: KeyPath,
}

impl<'v> Fields<'v> {
    /// `value` as a mapping (`what` names it in the error when it is not one).
    pub(crate) fn open(
        issues: &mut Issues,
        value: &'v Value,
        path: &KeyPath,
        what: &str,
    ) -> Option<Self> {
        match value {
            Value::Mapping(map) => Some(Self {
                map,
                path: path.clone(),
            }),
            other => {
                issues.at_value(path, format!("expected {what}, found {}", describe(other)));
                None
            }
        }
    }

    /// Reports every key not in `allowed`. `misplaced` may explain a key that belongs elsewhere.
    pub(crate) fn allow_only(
        &self,
        issues: &mut Issues,
        what: &str,
        allowed: &[&str],
        misplaced: &dyn Fn(&str) -> Option<String>,
    ) {
        for key in self.map.keys() {
            let text = key_text(key);
            if !key.is_string() {
                let message = format!(
                    "keys are names; {} is not a key {what} takes",
                    describe(key)
                );
                issues.at_key(&self.path.key(&text), message);
            } else if !allowed.contains(&text.as_str()) {
                let hint = misplaced(&text)
                    .map(|why| format!(": {why}"))
                    .or_else(|| {
                        closest(&text, allowed).map(|near| format!(" (did you mean `{near}`?)"))
                    })
                    .unwrap_or_default();
                let message = format!(
                    "unknown key `{text}` in {what}{hint}; expected one of: {}",
                    allowed.join(", ")
                );
                issues.at_key(&self.path.key(&text), message);
            }
        }
    }

    pub(crate) fn path(&self) -> &KeyPath {
        &self.path
    }

    pub(crate) fn has(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    /// A key that must be there. `expected` says what goes under it, for the missing-key error.
    pub(crate) fn required<T>(
        &self,
        issues: &mut Issues,
        key: &str,
        expected: &str,
        read: Read<'_, T>,
    ) -> Option<T> {
        match self.map.get(key) {
            Some(value) => read(issues, value, &self.path.key(key)),
            None => {
                issues.at_key(
                    &self.path.key(key),
                    format!("missing key `{key}`: expected {expected}"),
                );
                None
            }
        }
    }

    /// A key that may be left out: `Some(None)` when it is.
    pub(crate) fn optional<T>(
        &self,
        issues: &mut Issues,
        key: &str,
        read: Read<'_, T>,
    ) -> Option<Option<T>> {
        match self.map.get(key) {
            Some(value) => read(issues, value, &self.path.key(key)).map(Some),
            None => Some(None),
        }
    }

    /// A key that may be left out for `default`.
    pub(crate) fn or<T>(
        &self,
        issues: &mut Issues,
        key: &str,
        default: T,
        read: Read<'_, T>,
    ) -> Option<T> {
        self.optional(issues, key, read)
            .map(|value| value.unwrap_or(default))
    }
}

/// The text of a scalar. librdkafka properties and environment values are strings, but `5`
/// or `true` written without quotes mean the same, so they are accepted as their text.
pub(crate) fn scalar_text(issues: &mut Issues, value: &Value, path: &KeyPath) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        other => {
            let message = format!(
                "expected a string, number or boolean, found {}",
                describe(other)
            );
            issues.at_value(path, message);
            None
        }
    }
}

pub(crate) fn string(issues: &mut Issues, value: &Value, path: &KeyPath) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(_) | Value::Bool(_) => {
            let message = format!(
                "expected a string, found {}; quote it if it is meant as text",
                describe(value)
            );
            issues.at_value(path, message);
            None
        }
        other => {
            issues.at_value(
                path,
                format!("expected a string, found {}", describe(other)),
            );
            None
        }
    }
}

pub(crate) fn boolean(issues: &mut Issues, value: &Value, path: &KeyPath) -> Option<bool> {
    if let Value::Bool(boolean) = value {
        return Some(*boolean);
    }
    let message = format!("expected true or false, found {}", describe(value));
    issues.at_value(path, message);
    None
}

/// A whole number in `range`; `meaning` says what it counts, for the error.
pub(crate) fn whole(
    range: RangeInclusive<u64>,
    meaning: &str,
) -> impl Fn(&mut Issues, &Value, &KeyPath) -> Option<u64> + '_ {
    move |issues, value, path| {
        if let Some(number) = value.as_u64().filter(|number| range.contains(number)) {
            return Some(number);
        }
        let bounds = if *range.end() == u64::MAX {
            format!("a whole number of at least {}", range.start())
        } else {
            format!("a whole number from {} to {}", range.start(), range.end())
        };
        issues.at_value(
            path,
            format!("expected {bounds} ({meaning}), found {}", describe(value)),
        );
        None
    }
}

/// A number (whole or not) in `range`.
pub(crate) fn fraction(
    range: RangeInclusive<f64>,
    meaning: &str,
) -> impl Fn(&mut Issues, &Value, &KeyPath) -> Option<f64> + '_ {
    move |issues, value, path| {
        let number = match value {
            Value::Number(number) => number.as_f64(),
            _ => None,
        };
        if let Some(number) = number.filter(|number| range.contains(number)) {
            return Some(number);
        }
        let message = format!(
            "expected a number from {} to {} ({meaning}), found {}",
            range.start(),
            range.end(),
            describe(value)
        );
        issues.at_value(path, message);
        None
    }
}

pub(crate) fn duration(issues: &mut Issues, value: &Value, path: &KeyPath) -> Option<Duration> {
    match value {
        Value::String(text) => duration::parse(text)
            .map_err(|message| issues.at_value(path, message))
            .ok(),
        Value::Number(number) => {
            let message = format!(
                "expected {}, found the number {number}: add a unit, like {number}ms",
                duration::EXPECTED
            );
            issues.at_value(path, message);
            None
        }
        other => {
            let message = format!("expected {}, found {}", duration::EXPECTED, describe(other));
            issues.at_value(path, message);
            None
        }
    }
}

/// A duration above zero.
pub(crate) fn positive_duration(
    issues: &mut Issues,
    value: &Value,
    path: &KeyPath,
) -> Option<Duration> {
    let duration = duration(issues, value, path)?;
    if duration.is_zero() {
        issues.at_value(path, "expected a duration above 0s, found 0s");
        return None;
    }
    Some(duration)
}

/// One of a fixed set of words (numbers match by their text, so `acks: 1` works).
pub(crate) fn choice<'c, T: Copy>(
    choices: &'c [(&'static str, T)],
) -> impl Fn(&mut Issues, &Value, &KeyPath) -> Option<T> + 'c {
    move |issues, value, path| {
        let text = match value {
            Value::String(text) => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            _ => None,
        };
        let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
        if let Some(text) = &text {
            if let Some((_, choice)) = choices.iter().find(|(name, _)| name == text) {
                return Some(*choice);
            }
        }
        let hint = text
            .as_deref()
            .and_then(|text| closest(text, &names))
            .map(|near| format!(" (did you mean `{near}`?)"))
            .unwrap_or_default();
        let message = format!(
            "expected one of: {}; found {}{hint}",
            names.join(", "),
            describe(value)
        );
        issues.at_value(path, message);
        None
    }
}

/// A string turned into `T` by `parse`, whose error message is reported as it is.
pub(crate) fn parsed<T>(
    parse: fn(&str) -> Result<T, String>,
    expected: &'static str,
) -> impl Fn(&mut Issues, &Value, &KeyPath) -> Option<T> {
    move |issues, value, path| match value {
        Value::String(text) => parse(text)
            .map_err(|message| issues.at_value(path, message))
            .ok(),
        other => {
            issues.at_value(
                path,
                format!("expected {expected}, found {}", describe(other)),
            );
            None
        }
    }
}

/// A list, each item read by `item`; every bad item is reported.
pub(crate) fn list<'r, T>(
    what: &'r str,
    item: Read<'r, T>,
) -> impl Fn(&mut Issues, &Value, &KeyPath) -> Option<Vec<T>> + 'r {
    move |issues, value, path| {
        let Value::Sequence(items) = value else {
            issues.at_value(
                path,
                format!("expected a list of {what}, found {}", describe(value)),
            );
            return None;
        };
        let read: Vec<Option<T>> = items
            .iter()
            .enumerate()
            .map(|(index, value)| item(issues, value, &path.index(index)))
            .collect();
        read.into_iter().collect()
    }
}

/// A mapping of names to strings; `check_key` vets each name (its error is reported at the key).
pub(crate) fn string_map(
    check_key: fn(&str) -> Result<(), String>,
) -> impl Fn(&mut Issues, &Value, &KeyPath) -> Option<BTreeMap<String, String>> {
    move |issues, value, path| {
        let Value::Mapping(map) = value else {
            let message = format!(
                "expected a mapping of names to strings, found {}",
                describe(value)
            );
            issues.at_value(path, message);
            return None;
        };
        let mut entries = BTreeMap::new();
        let mut good = true;
        for (key, value) in map {
            let key_path = path.key(&key_text(key));
            let Value::String(name) = key else {
                issues.at_key(
                    &key_path,
                    format!("expected a name, found {}", describe(key)),
                );
                good = false;
                continue;
            };
            if let Err(message) = check_key(name) {
                issues.at_key(&key_path, message);
                good = false;
            }
            match scalar_text(issues, value, &key_path) {
                Some(text) => {
                    entries.insert(name.clone(), text);
                }
                None => good = false,
            }
        }
        good.then_some(entries)
    }
}
