//! Model lifecycle: versioned snapshots on object storage, and updates
//! streamed on a compacted `models` topic so any number of serving
//! replicas hot-swap without a restart.
//!
//! **On the topic**, a model publishes two kinds of record, both postcard-
//! encoded [`ModelUpdate`]s keyed by text:
//! - `<model>/snapshot`: the whole model, every `snapshot_every` syncs.
//!   Compaction keeps the latest one.
//! - `<model>/delta/<n>` with `n = version mod 2·snapshot_every`: the slots
//!   touched since the previous sync. Compaction keeps the latest delta per
//!   key, and since at most `snapshot_every` deltas follow the latest
//!   snapshot, every one of them survives.
//!
//! A [`Replica`] reads the topic in order: a snapshot newer than what it
//! holds replaces its model; a delta applies if it starts at the replica's
//! version, is skipped if older, and waits for the next snapshot if it
//! leaves a gap. Replicas never block on the learner and never see a
//! half-applied update.
//!
//! **On object storage**, [`ModelStore`] keeps `<model>/v<version>.bin`
//! (the model and the source offsets it has learned up to), so a restarted
//! learner resumes exactly where its last snapshot was taken.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use eddy_platform::store::{Store, StoreError};
use eddy_platform::topic::{Header, Producer, ProducerRecord, Record, TopicError};

use crate::TrainingError;
use crate::ftrl::{Ftrl, FtrlDelta};

/// What goes on the models topic.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ModelUpdate {
    /// A full model: every non-zero weight (FTRL), or the whole recommender.
    Snapshot {
        /// The version it is.
        version: u64,
        /// The model, postcard-encoded.
        model: Vec<u8>,
    },
    /// The weights an FTRL model changed since the previous version.
    Delta(FtrlDelta),
    /// One piece of a snapshot too large for one record (Kafka refuses
    /// records above `message.max.bytes`, 1 MB by default), keyed
    /// `<model>/snapshot/<index>`. Pieces come first, then the manifest.
    Chunk {
        /// The snapshot's version.
        version: u64,
        /// Which piece, from 0.
        index: u32,
        /// The piece's bytes.
        bytes: Vec<u8>,
    },
    /// The manifest of a chunked snapshot, keyed `<model>/snapshot`: the
    /// snapshot is the `chunks` pieces of `version`, in order.
    Chunked {
        /// The snapshot's version.
        version: u64,
        /// How many pieces.
        chunks: u32,
        /// The snapshot's length in bytes.
        len: u64,
        /// CRC-32 of the whole snapshot.
        crc: u32,
    },
}

/// Snapshots above this many bytes go as chunks of this size.
pub const CHUNK_BYTES: usize = 512 * 1024;

/// The header on every models-topic record that says up to which event
/// time the model had learned when it was published (every example at or
/// before it; `none` if it had learned nothing). Serving compares it with a
/// trigger's time to say whether a recommendation was as of its trigger.
pub const TRAINED_UNTIL_HEADER: &str = "eddy.model.trained_until";

/// The [`TRAINED_UNTIL_HEADER`] of a record: `Some(None)` for a model that
/// had learned nothing, `None` when the header is absent or unreadable.
pub fn trained_until(rec: &Record) -> Option<Option<i64>> {
    let v = std::str::from_utf8(rec.header(TRAINED_UNTIL_HEADER)?).ok()?;
    if v == "none" {
        return Some(None);
    }
    v.parse().ok().map(Some)
}

/// Sends a snapshot of `name` as one record, or as chunks and a manifest.
fn send_snapshot(
    producer: &mut dyn Producer,
    topic: &str,
    name: &str,
    version: u64,
    model: Vec<u8>,
    headers: &[Header],
) -> Result<(), TopicError> {
    let encode = |u: &ModelUpdate| postcard::to_stdvec(u).expect("updates serialize");
    let key = format!("{name}/snapshot");
    if model.len() <= CHUNK_BYTES {
        let update = ModelUpdate::Snapshot { version, model };
        producer.send(
            ProducerRecord::new(topic, Some(key.into_bytes()), Some(encode(&update)))
                .with_headers(headers),
        )?;
        return Ok(());
    }
    let chunks = model.chunks(CHUNK_BYTES).count() as u32;
    for (index, piece) in model.chunks(CHUNK_BYTES).enumerate() {
        let update = ModelUpdate::Chunk {
            version,
            index: index as u32,
            bytes: piece.to_vec(),
        };
        producer.send(
            ProducerRecord::new(
                topic,
                Some(format!("{key}/{index}").into_bytes()),
                Some(encode(&update)),
            )
            .with_headers(headers),
        )?;
    }
    let manifest = ModelUpdate::Chunked {
        version,
        chunks,
        len: model.len() as u64,
        crc: crc32fast::hash(&model),
    };
    producer.send(
        ProducerRecord::new(topic, Some(key.into_bytes()), Some(encode(&manifest)))
            .with_headers(headers),
    )?;
    Ok(())
}

/// Reassembles chunked snapshots from the models topic.
#[derive(Debug, Default, Clone)]
pub struct Assembler {
    /// The version whose pieces are being collected, and the pieces.
    version: Option<u64>,
    pieces: BTreeMap<u32, Vec<u8>>,
}

impl Assembler {
    /// Takes an update: a whole snapshot comes out of a plain `Snapshot`,
    /// or of a manifest whose pieces have all arrived. Other updates
    /// (deltas) come out as they are; pieces are kept.
    pub fn take(&mut self, update: ModelUpdate) -> Result<Option<ModelUpdate>, TrainingError> {
        match update {
            ModelUpdate::Chunk {
                version,
                index,
                bytes,
            } => {
                if self.version.is_some_and(|v| v > version) {
                    return Ok(None);
                }
                if self.version != Some(version) {
                    self.version = Some(version);
                    self.pieces.clear();
                }
                self.pieces.insert(index, bytes);
                Ok(None)
            }
            ModelUpdate::Chunked {
                version,
                chunks,
                len,
                crc,
            } => {
                if self.version != Some(version) || self.pieces.len() != chunks as usize {
                    // Pieces missing (compacted away, or not yet read): wait
                    // for the next snapshot.
                    return Ok(None);
                }
                let mut model = Vec::with_capacity(len as usize);
                for i in 0..chunks {
                    match self.pieces.get(&i) {
                        Some(p) => model.extend_from_slice(p),
                        None => return Ok(None),
                    }
                }
                self.pieces.clear();
                if model.len() as u64 != len || crc32fast::hash(&model) != crc {
                    return Err(TrainingError::Snapshot(format!(
                        "chunked snapshot version {version} does not reassemble: {} bytes, expected {len}",
                        model.len()
                    )));
                }
                Ok(Some(ModelUpdate::Snapshot { version, model }))
            }
            other => Ok(Some(other)),
        }
    }
}

/// Why publishing or storing failed.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error(transparent)]
    /// The models topic could not be written or read.
    Topic(#[from] TopicError),
    #[error(transparent)]
    /// Object storage failed.
    Store(#[from] StoreError),
    #[error(transparent)]
    /// A model could not be decoded.
    Model(#[from] TrainingError),
}

impl LifecycleError {
    /// Who must act.
    pub fn blame(&self) -> eddy_platform::topic::Blame {
        match self {
            LifecycleError::Topic(e) => e.blame(),
            LifecycleError::Store(e) => e.blame(),
            LifecycleError::Model(e) => e.blame(),
        }
    }
}

/// Publishes a learner's updates.
pub struct Publisher {
    /// The model's name.
    pub name: String,
    topic: String,
    snapshot_every: u64,
    syncs: u64,
    /// Sent as [`TRAINED_UNTIL_HEADER`] on every record.
    trained_until: Option<i64>,
}

impl Publisher {
    /// Publishes model `name` to `topic`, with a full snapshot every `snapshot_every` syncs.
    pub fn new(name: &str, topic: &str, snapshot_every: u64) -> Publisher {
        Publisher {
            name: name.to_string(),
            topic: topic.to_string(),
            snapshot_every: snapshot_every.max(1),
            syncs: 0,
            trained_until: None,
        }
    }

    /// The event time up to which the model has learned (every example at
    /// or before it), sent with the next syncs.
    pub fn set_trained_until(&mut self, t: Option<i64>) {
        self.trained_until = t;
    }

    fn headers(&self) -> Vec<Header> {
        let value = self
            .trained_until
            .map_or_else(|| "none".to_string(), |t| t.to_string());
        vec![Header::text(TRAINED_UNTIL_HEADER, value)]
    }

    /// Sends what changed since the last sync (and, every
    /// `snapshot_every` syncs, the whole model after it). The first sync
    /// is always a snapshot, so a replica can start.
    pub fn sync(
        &mut self,
        model: &mut Ftrl,
        producer: &mut dyn Producer,
    ) -> Result<(), LifecycleError> {
        let delta = model.take_delta();
        let key = format!(
            "{}/delta/{}",
            self.name,
            delta.version % (2 * self.snapshot_every)
        );
        let encode = |u: &ModelUpdate| postcard::to_stdvec(u).expect("updates serialize");
        let headers = self.headers();
        if self.syncs > 0 {
            producer.send(
                ProducerRecord::new(
                    &self.topic,
                    Some(key.into_bytes()),
                    Some(encode(&ModelUpdate::Delta(delta))),
                )
                .with_headers(&headers),
            )?;
        }
        if self.syncs.is_multiple_of(self.snapshot_every) {
            send_snapshot(
                producer,
                &self.topic,
                &self.name,
                model.version,
                model.to_bytes(),
                &headers,
            )?;
        }
        self.syncs += 1;
        producer.flush()?;
        Ok(())
    }

    /// Sends a whole model as a snapshot: for models without sparse
    /// deltas (the recommenders), every sync is a snapshot.
    pub fn sync_snapshot(
        &mut self,
        version: u64,
        model: Vec<u8>,
        producer: &mut dyn Producer,
    ) -> Result<(), LifecycleError> {
        let headers = self.headers();
        send_snapshot(producer, &self.topic, &self.name, version, model, &headers)?;
        self.syncs += 1;
        producer.flush()?;
        Ok(())
    }
}

/// What a replica did with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// A snapshot of this version replaced the model.
    Snapshot(u64),
    /// A delta brought the model to this version.
    Delta(u64),
    /// Older than what the replica holds.
    Stale,
    /// Starts after the replica's version: it waits for a snapshot.
    Gap,
    /// Another model's record.
    Other,
}

/// A serving copy of a model, kept current from the models topic.
#[derive(Clone)]
pub struct Replica {
    name: String,
    /// The model, once a snapshot has arrived.
    pub model: Option<Ftrl>,
    assembler: Assembler,
}

impl Replica {
    /// An empty replica of model `name`.
    pub fn new(name: &str) -> Replica {
        Replica {
            name: name.to_string(),
            model: None,
            assembler: Assembler::default(),
        }
    }

    /// The version served, if any model is loaded.
    pub fn version(&self) -> Option<u64> {
        self.model.as_ref().map(|m| m.version)
    }

    /// Applies one record of the models topic.
    pub fn apply(&mut self, rec: &Record) -> Result<Applied, TrainingError> {
        let Some(key) = rec.key.as_deref().and_then(|k| std::str::from_utf8(k).ok()) else {
            return Ok(Applied::Other);
        };
        if key.split('/').next() != Some(self.name.as_str()) {
            return Ok(Applied::Other);
        }
        let Some(value) = &rec.value else {
            return Ok(Applied::Other);
        };
        let update: ModelUpdate =
            postcard::from_bytes(value).map_err(|e| TrainingError::Snapshot(e.to_string()))?;
        let Some(update) = self.assembler.take(update)? else {
            return Ok(Applied::Other);
        };
        Ok(match update {
            ModelUpdate::Snapshot { version, model } => {
                if self.version().is_some_and(|v| v >= version) {
                    Applied::Stale
                } else {
                    // Decoded fully before the swap: readers see the old
                    // model or the new one.
                    self.model = Some(Ftrl::from_bytes(&model)?);
                    Applied::Snapshot(version)
                }
            }
            ModelUpdate::Delta(delta) => match &mut self.model {
                None => Applied::Gap,
                Some(m) if delta.version <= m.version => Applied::Stale,
                Some(m) => {
                    if m.apply_delta(&delta) {
                        Applied::Delta(delta.version)
                    } else {
                        Applied::Gap
                    }
                }
            },
            // The assembler keeps pieces and turns manifests into snapshots.
            ModelUpdate::Chunk { .. } | ModelUpdate::Chunked { .. } => Applied::Other,
        })
    }
}

/// (topic, partition) → the next offset to read.
pub type Offsets = BTreeMap<(String, i32), i64>;

/// First bytes of a stored snapshot: a CRC-32 of the body follows.
const SNAPSHOT_MAGIC: &[u8; 8] = b"EDDYMOD1";

/// What a stored snapshot holds.
#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    model: Vec<u8>,
    offsets: Offsets,
}

/// Versioned snapshots of a model on object storage.
pub struct ModelStore {
    store: Store,
    /// Snapshots kept (older ones are deleted). Default 5.
    pub keep: usize,
}

impl ModelStore {
    /// Snapshots of model `name` under `store`.
    pub fn new(store: &Store, name: &str) -> ModelStore {
        ModelStore {
            store: store.child(name),
            keep: 5,
        }
    }

    /// Saves `model` with the offsets it has learned up to.
    pub fn save(&self, model: &Ftrl, offsets: &Offsets) -> Result<String, LifecycleError> {
        self.save_bytes(model.version, model.to_bytes(), offsets)
    }

    /// Saves any model's bytes as version `version`, with its offsets.
    pub fn save_bytes(
        &self,
        version: u64,
        model: Vec<u8>,
        offsets: &Offsets,
    ) -> Result<String, LifecycleError> {
        let name = format!("v{version:012}.bin");
        let body = postcard::to_stdvec(&Stored {
            model,
            offsets: offsets.clone(),
        })
        .expect("snapshots serialize");
        let mut bytes = Vec::with_capacity(body.len() + 12);
        bytes.extend_from_slice(SNAPSHOT_MAGIC);
        bytes.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        bytes.extend_from_slice(&body);
        self.store.put(&name, bytes)?;
        let mut all = self.versions()?;
        while all.len() > self.keep {
            self.store.delete(&all.remove(0))?;
        }
        Ok(format!("{}/{name}", self.store.url()))
    }

    fn versions(&self) -> Result<Vec<String>, LifecycleError> {
        Ok(self
            .store
            .list("")?
            .into_iter()
            .filter(|n| n.starts_with('v') && n.ends_with(".bin"))
            .collect())
    }

    /// The latest snapshot: the model and its offsets.
    pub fn latest(&self) -> Result<Option<(Ftrl, Offsets)>, LifecycleError> {
        match self.latest_bytes()? {
            Some((bytes, offsets)) => Ok(Some((Ftrl::from_bytes(&bytes)?, offsets))),
            None => Ok(None),
        }
    }

    /// The latest snapshot's bytes and offsets, whatever the model.
    pub fn latest_bytes(&self) -> Result<Option<(Vec<u8>, Offsets)>, LifecycleError> {
        let Some(name) = self.versions()?.pop() else {
            return Ok(None);
        };
        let bytes = self
            .store
            .get(&name)?
            .ok_or_else(|| TrainingError::Snapshot(format!("{name} disappeared")))?;
        let damaged = |why: String| {
            TrainingError::Snapshot(format!(
                "{}/{name} is damaged ({why}). A model resumed from an older snapshot would miss the examples learned since, so eddy stops: restore the file, or delete the model's directory to train it again from a fresh start (with the pipeline's checkpoints deleted too, so it relearns every event)",
                self.store.url()
            ))
        };
        // Snapshots framed with a checksum (a flipped bit in a weight would
        // otherwise decode into another model); older ones are bare.
        let body = match bytes.strip_prefix(SNAPSHOT_MAGIC.as_slice()) {
            Some(rest) => {
                if rest.len() < 4 {
                    return Err(damaged("truncated".into()).into());
                }
                let crc = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes"));
                if crc32fast::hash(&rest[4..]) != crc {
                    return Err(damaged("checksum mismatch".into()).into());
                }
                &rest[4..]
            }
            None => &bytes[..],
        };
        let stored: Stored = postcard::from_bytes(body).map_err(|e| damaged(e.to_string()))?;
        Ok(Some((stored.model, stored.offsets)))
    }

    /// Where the snapshots are.
    pub fn url(&self) -> String {
        self.store.url().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Learner;
    use crate::ftrl::FtrlConfig;
    use crate::hashing::{FeatureHasher, Value};
    use eddy_platform::topic::local::{LocalLog, LocalLogConfig};
    use eddy_platform::topic::{Backend, StartOffset, TopicSpec};
    use std::time::Duration;

    fn example(h: &FeatureHasher, i: u64) -> (Vec<(u32, f32)>, f64) {
        let mut b = h.builder();
        b.add(
            FeatureHasher::namespace("u"),
            "user",
            Value::Category(&(i % 97).to_string()),
        )
        .unwrap();
        b.add(
            FeatureHasher::namespace("x"),
            "x",
            Value::Number((i % 13) as f64 / 13.0),
        )
        .unwrap();
        let mut x = Vec::new();
        b.finish(&mut x);
        (x, f64::from(i % 97 < 40))
    }

    /// The replica reads the real models topic on the local log; one that
    /// starts late catches up from the latest snapshot and the deltas after
    /// it, skipping what is older.
    #[test]
    fn replicas_follow_the_models_topic_and_a_late_one_catches_up() {
        let dir = tempfile::tempdir().unwrap();
        let log = LocalLog::open(LocalLogConfig::new(dir.path())).unwrap();
        log.create_topic(&TopicSpec::new("models").compacted())
            .unwrap();
        let mut producer = log.producer().unwrap();
        let h = FeatureHasher::new(14, Vec::new());
        let mut learner = Ftrl::new(FtrlConfig {
            bits: 14,
            ..FtrlConfig::default()
        });
        let mut publisher = Publisher::new("clicks", "models", 3);
        let mut early = Replica::new("clicks");
        let mut consumer = log.consumer(None).unwrap();
        consumer
            .assign_all("models", StartOffset::Earliest)
            .unwrap();
        let mut n = 0;
        for _ in 0..8 {
            for _ in 0..500 {
                let (x, y) = example(&h, n);
                learner.learn(&x, y);
                n += 1;
            }
            publisher.sync(&mut learner, producer.as_mut()).unwrap();
            for rec in consumer.poll(100, Duration::from_millis(200)).unwrap() {
                early.apply(&rec).unwrap();
            }
            assert_eq!(early.version(), Some(learner.version));
            for i in 0..50 {
                let (x, _) = example(&h, i);
                assert_eq!(
                    early.model.as_ref().unwrap().predict(&x).to_bits(),
                    learner.predict(&x).to_bits()
                );
            }
        }
        // A replica started now reads the whole topic from the beginning.
        let records =
            eddy_platform::topic::read_to_end(&log, "models", Duration::from_secs(5)).unwrap();
        let mut late = Replica::new("clicks");
        let outcomes: Vec<Applied> = records.iter().map(|r| late.apply(r).unwrap()).collect();
        assert!(outcomes.contains(&Applied::Stale), "{outcomes:?}");
        assert_eq!(late.version(), Some(learner.version));
        let mut other = Replica::new("other-model");
        assert!(
            records
                .iter()
                .all(|r| other.apply(r).unwrap() == Applied::Other)
        );
    }

    /// Model snapshots had no checksum: a flipped bit in a weight decoded
    /// into another model. Every flipped bit is now refused, loudly.
    #[test]
    fn a_bit_flipped_model_snapshot_was_loaded_as_another_model() {
        let store = Store::open("memory://models-flip").unwrap();
        let models = ModelStore::new(&store, "clicks");
        let h = FeatureHasher::new(8, Vec::new());
        let mut learner = Ftrl::new(FtrlConfig {
            bits: 8,
            ..FtrlConfig::default()
        });
        for i in 0..50 {
            let (x, y) = example(&h, i);
            learner.learn(&x, y);
        }
        let offsets = BTreeMap::from([(("clicks".to_string(), 0), 50)]);
        models.save(&learner, &offsets).unwrap();
        let name = models.versions().unwrap().pop().unwrap();
        let good = models.store.get(&name).unwrap().unwrap().to_vec();
        for bit in (0..good.len() * 8).step_by(7) {
            let mut bad = good.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            models.store.put(&name, bad).unwrap();
            let err = models.latest().map(|_| ()).unwrap_err().to_string();
            assert!(err.contains("is damaged"), "bit {bit}: {err}");
        }
        models.store.put(&name, good).unwrap();
        assert!(models.latest().unwrap().is_some());
    }

    #[test]
    fn a_restarted_learner_resumes_from_its_latest_snapshot_and_offsets() {
        let store = Store::open("memory://models").unwrap();
        let models = ModelStore::new(&store, "clicks");
        assert!(models.latest().unwrap().is_none());
        let h = FeatureHasher::new(12, Vec::new());
        let mut learner = Ftrl::new(FtrlConfig {
            bits: 12,
            ..FtrlConfig::default()
        });
        for round in 0..7 {
            for i in 0..200 {
                let (x, y) = example(&h, round * 200 + i);
                learner.learn(&x, y);
            }
            learner.take_delta();
            let offsets = BTreeMap::from([(("clicks".to_string(), 0), (round + 1) as i64 * 200)]);
            models.save(&learner, &offsets).unwrap();
        }
        let (restored, offsets) = models.latest().unwrap().unwrap();
        assert_eq!(restored.version, learner.version);
        assert_eq!(offsets[&("clicks".to_string(), 0)], 1400);
        let (x, _) = example(&h, 3);
        assert_eq!(
            restored.predict(&x).to_bits(),
            learner.predict(&x).to_bits()
        );
        assert_eq!(
            models.versions().unwrap().len(),
            5,
            "older snapshots are pruned"
        );
    }

    /// A snapshot larger than a record goes as chunks and a manifest; a
    /// replica reassembles it, and a missing piece means waiting for the
    /// next snapshot rather than loading a broken model.
    #[test]
    fn large_snapshots_go_in_chunks_and_replicas_reassemble_them() {
        let dir = tempfile::tempdir().unwrap();
        let log = LocalLog::open(LocalLogConfig::new(dir.path())).unwrap();
        log.create_topic(&TopicSpec::new("models").compacted())
            .unwrap();
        let mut producer = log.producer().unwrap();
        let h = FeatureHasher::new(18, Vec::new());
        let mut learner = Ftrl::new(FtrlConfig {
            bits: 18,
            ..FtrlConfig::default()
        });
        // Enough distinct features that the sparse snapshot passes a chunk.
        for i in 0..60_000u64 {
            let mut b = h.builder();
            b.add(
                FeatureHasher::namespace("u"),
                "user",
                Value::Category(&i.to_string()),
            )
            .unwrap();
            let mut x = Vec::new();
            b.finish(&mut x);
            learner.learn(&x, f64::from(i % 3 == 0));
        }
        assert!(
            learner.to_bytes().len() > CHUNK_BYTES,
            "{}",
            learner.to_bytes().len()
        );
        let mut publisher = Publisher::new("big", "models", 1);
        publisher.sync(&mut learner, producer.as_mut()).unwrap();
        let records =
            eddy_platform::topic::read_to_end(&log, "models", Duration::from_secs(5)).unwrap();
        assert!(
            records.len() > 2,
            "chunks and a manifest: {}",
            records.len()
        );
        let mut replica = Replica::new("big");
        let outcomes: Vec<Applied> = records.iter().map(|r| replica.apply(r).unwrap()).collect();
        assert_eq!(outcomes.last(), Some(&Applied::Snapshot(learner.version)));
        let (x, _) = example(&h, 5);
        assert_eq!(
            replica.model.as_ref().unwrap().predict(&x).to_bits(),
            learner.predict(&x).to_bits()
        );
        // Without its first piece, the manifest loads nothing.
        let mut partial = Replica::new("big");
        for r in &records[1..] {
            partial.apply(r).unwrap();
        }
        assert!(partial.version().is_none());
    }
}
