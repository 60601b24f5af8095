//! The streaming feature engine.
//!
//! Layers, bottom up: [`value`] (cells), [`agg`] (one operator over one
//! window), [`keyed`] (all windows of one key), [`view`] (all keys of a view,
//! with timers), [`task`] (one source partition: watermark, reordering,
//! joins, expressions, every view), and [`job`] (tasks, inputs, outputs and
//! checkpoints). ARCHITECTURE.md tells the story; the semantics are in
//! README.md, "Feature semantics".

pub mod agg;
pub mod archive;
pub mod backfill;
pub mod delayed;
pub mod expr;
pub mod frame;
pub mod job;
pub mod keyed;
pub mod table;
pub mod task;
pub mod value;
pub mod view;

#[cfg(test)]
mod rekey_tests;
#[cfg(test)]
mod tests;
