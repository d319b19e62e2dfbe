//! Problems found while reading, before they are located in the text, and the words they use
//! for values and near-miss keys.

use serde_yaml_ng::Value;

use super::path::{Anchor, KeyPath};

/// One problem, before it is located in the text.
#[derive(Debug)]
pub(crate) struct Issue {
    pub(crate) path: KeyPath,
    pub(crate) anchor: Anchor,
    pub(crate) message: String,
}

/// The problems found so far, in the order found.
#[derive(Debug, Default)]
pub(crate) struct Issues {
    pub(crate) list: Vec<Issue>,
}

impl Issues {
    /// A problem with the value under `path`.
    pub(crate) fn at_value(&mut self, path: &KeyPath, message: impl Into<String>) {
        self.push(path, Anchor::Value, message.into());
    }

    /// A problem with the key at the end of `path` (unknown, misplaced, missing).
    pub(crate) fn at_key(&mut self, path: &KeyPath, message: impl Into<String>) {
        self.push(path, Anchor::Key, message.into());
    }

    fn push(&mut self, path: &KeyPath, anchor: Anchor, message: String) {
        self.list.push(Issue {
            path: path.clone(),
            anchor,
            message,
        });
    }
}

/// How a value reads in a message: "the string `abc`", "the number 9", "a list".
pub(crate) fn describe(value: &Value) -> String {
    match value {
        Value::Null => "nothing (null)".to_string(),
        Value::Bool(boolean) => format!("`{boolean}`"),
        Value::Number(number) => format!("the number {number}"),
        Value::String(text) => format!("`{text}`"),
        Value::Sequence(_) => "a list".to_string(),
        Value::Mapping(_) => "a mapping".to_string(),
        Value::Tagged(tagged) => format!("a value tagged `{}`", tagged.tag),
    }
}

/// A key's text for paths and messages (keys other than strings compare by their text).
pub(crate) fn key_text(key: &Value) -> String {
    match key {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        Value::Bool(boolean) => boolean.to_string(),
        Value::Null => "null".to_string(),
        other => describe(other),
    }
}

/// The allowed key closest to a misspelt one, if it is close enough to be a likely typo.
pub(crate) fn closest<'a>(key: &str, allowed: &[&'a str]) -> Option<&'a str> {
    let distance = |a: &str, b: &str| -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut diagonal = row[0];
            row[0] = i + 1;
            for (j, cb) in b.iter().enumerate() {
                let above = row[j + 1];
                row[j + 1] = (diagonal + usize::from(ca != *cb))
                    .min(row[j] + 1)
                    .min(above + 1);
                diagonal = above;
            }
        }
        row[b.len()]
    };
    allowed
        .iter()
        .map(|candidate| (distance(key, candidate), *candidate))
        .filter(|(distance, candidate)| *distance <= 2 && distance * 3 <= candidate.len())
        .min()
        .map(|(_, candidate)| candidate)
}
