//! A restored task's offsets against what its sources hold now: eddy
//! stops rather than skip records or wait for offsets that never come.

use std::collections::HashMap;

use crate::engine::task::Task;

use super::JobError;

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
        let why = if at > high {
            "the checkpoint is past the end of the topic (it was recreated, or emptied)"
        } else if at < low {
            "records between them were deleted (retention) before the task read them"
        } else {
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
