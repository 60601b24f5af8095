//! A restored task's offsets against what its sources hold now: eddy
//! stops rather than skip records or wait for offsets that never come.

use std::collections::HashMap;

use crate::engine::task::Task;

use super::JobError;

/// What a position `at` outside a partition's `low..=high` means, if it is.
fn lost(at: i64, low: i64, high: i64) -> Option<&'static str> {
    if at > high {
        Some("the checkpoint is past the end of the topic (it was recreated, or emptied)")
    } else if at < low {
        Some("records between them were deleted (retention) before the task read them")
    } else {
        None
    }
}

/// Checks a restored task's source positions against the offsets the
/// sources hold: a position past the end means the topic was recreated or
/// emptied (records after it would be skipped, or the run would wait for
/// offsets that never come); one below the start means retention deleted
/// records the task never read.
pub(crate) fn check_positions(
    task: &Task,
    topics: &[String],
    bounds: &HashMap<(usize, i32), (i64, i64)>,
    url: &str,
) -> Result<(), JobError> {
    for (s, topic) in topics.iter().enumerate() {
        let (Some(at), Some(&(low, high))) =
            (task.inputs[s].next_offset, bounds.get(&(s, task.partition)))
        else {
            continue;
        };
        let Some(why) = lost(at, low, high) else {
            continue;
        };
        return Err(JobError::PositionLost {
            topic: topic.clone(),
            partition: task.partition,
            at,
            low,
            high,
            why,
            url: url.to_string(),
        });
    }
    Ok(())
}

/// Checks a restored task's position in the repartition topic (re-keyed
/// views) as [`check_positions`] checks its sources': records retention
/// took before the task read them would be re-keyed events lost.
pub(crate) fn check_repartition(
    task: &Task,
    topic: &str,
    backend: &dyn crate::topic::Backend,
    url: &str,
) -> Result<(), JobError> {
    let Some(at) = task.repartition_offset() else {
        return Ok(());
    };
    let Some(p) = backend
        .describe_topic(topic)?
        .partitions
        .into_iter()
        .find(|p| p.id == task.partition)
    else {
        return Ok(());
    };
    let Some(why) = lost(at, p.low, p.high) else {
        return Ok(());
    };
    Err(JobError::PositionLost {
        topic: topic.to_string(),
        partition: task.partition,
        at,
        low: p.low,
        high: p.high,
        why,
        url: url.to_string(),
    })
}
