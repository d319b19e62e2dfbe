//! Retention: the newest snapshots of a group are kept, and what none of them can need is
//! deleted from the object store.

use super::error::SnapshotError;
use super::manifest::{self, Content, Manifest};
use super::objects::SnapshotObjects;

/// Keeps the newest `keep` snapshots of `group`; deletes older manifests, and the objects
/// wholly below what the oldest kept snapshot covers. Objects an upload in progress may
/// still reference (at or above the newest snapshot) are never touched.
pub async fn enforce_retention(
    objects: &SnapshotObjects,
    group: u64,
    keep: u64,
) -> Result<(), SnapshotError> {
    let mut manifests: Vec<(u64, String)> = objects
        .list(&manifest::manifests_prefix(group))
        .await?
        .into_iter()
        .filter_map(|object| Some((manifest::index_of_manifest_key(&object.key)?, object.key)))
        .collect();
    manifests.sort_unstable();
    if manifests.len() as u64 <= keep {
        return Ok(());
    }
    let split = manifests.len() - keep as usize;
    let (expired, kept) = manifests.split_at(split);
    let (oldest_index, oldest_key) = &kept[0];
    let oldest = Manifest::decode(&objects.get(oldest_key).await?).map_err(|source| {
        SnapshotError::Manifest {
            key: oldest_key.clone(),
            source,
        }
    })?;
    let referenced: std::collections::HashSet<String> = kept_references(objects, kept).await?;
    let first_kept_offset = match &oldest.content {
        Content::Partition(content) => content
            .chunks
            .first()
            .map_or(content.log_start_offset, |chunk| chunk.start_offset),
        Content::Metadata(_) => i64::MAX,
    };
    let mut deleted = 0u64;
    for object in objects.list(&manifest::group_prefix(group)).await? {
        if referenced.contains(&object.key) || object.key.contains("/snapshots/") {
            continue;
        }
        if object_is_below(&object.key, *oldest_index, first_kept_offset) {
            objects.delete(&object.key).await?;
            deleted += 1;
        }
    }
    for (_, key) in expired {
        objects.delete(key).await?;
        deleted += 1;
    }
    metrics::counter!("chronik_snapshot_objects_deleted_total").increment(deleted);
    Ok(())
}

async fn kept_references(
    objects: &SnapshotObjects,
    kept: &[(u64, String)],
) -> Result<std::collections::HashSet<String>, SnapshotError> {
    let mut referenced = std::collections::HashSet::new();
    for (_, key) in kept {
        let encoded = objects.get(key).await?;
        let manifest = Manifest::decode(&encoded).map_err(|source| SnapshotError::Manifest {
            key: key.clone(),
            source,
        })?;
        referenced.extend(manifest.object_keys());
    }
    Ok(referenced)
}

/// A chunk ending at or below `first_kept_offset`, or a state object below `oldest_index`.
fn object_is_below(key: &str, oldest_index: u64, first_kept_offset: i64) -> bool {
    let name = key.rsplit('/').next().unwrap_or("");
    let stem = name.split('.').next().unwrap_or("");
    if key.contains("/chunks/") {
        let end = stem
            .split('-')
            .nth(1)
            .and_then(|end| end.parse::<i64>().ok());
        end.is_some_and(|end| end <= first_kept_offset)
    } else if key.contains("/state/") {
        stem.parse::<u64>().is_ok_and(|index| index < oldest_index)
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_objects_wholly_below_the_oldest_kept_snapshot_are_deleted() {
        let chunk = manifest::chunk_key(7, 0, 100, "zst");
        assert!(object_is_below(&chunk, 50, 100));
        assert!(!object_is_below(&chunk, 50, 99));
        let state = manifest::state_key(0, 40, "zst");
        assert!(object_is_below(&state, 50, i64::MAX));
        assert!(!object_is_below(&state, 40, i64::MAX));
        assert!(!object_is_below(
            &manifest::manifest_key(7, 1),
            50,
            i64::MAX
        ));
    }
}
