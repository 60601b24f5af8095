//! The embedded local log: the default backend when no brokers are configured.
//!
//! Layout under the data directory:
//!
//! ```text
//! topics/<topic>/topic.json             the topic's spec (partitions, policy, retention)
//! topics/<topic>/<partition>/<base>.log segment files (see `segment`)
//! topics/<topic>/<partition>/.lock      held by the one process writing the partition
//! groups/<group>.json                   committed offsets
//! ```
//!
//! It is what lets a data scientist run the whole pipeline on a laptop: no
//! broker, no JVM, and files that a notebook or a second `eddy topics consume`
//! can read while the pipeline writes. It is deliberately one process: there
//! is no replication and no group rebalancing. Scaling out is Kafka's job, and
//! the same code runs there unchanged.

mod consumer;
mod groups;
mod maintenance;
mod partition;
mod producer;
mod reader;
mod segment;

#[cfg(test)]
mod tests;

pub use maintenance::MaintenanceReport;

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use self::consumer::LocalConsumer;
use self::maintenance::Maintenance;
use self::partition::PartitionWriter;
use self::producer::LocalProducer;
use super::{
    Backend, CleanupPolicy, Consumer, PartitionInfo, Producer, TopicDescription, TopicError,
    TopicSpec, validate_topic_name,
};

/// Settings of the local log.
#[derive(Debug, Clone)]
pub struct LocalLogConfig {
    /// The data directory. Default `./eddy-data`.
    pub dir: PathBuf,
    /// Size at which a segment is closed and a new one started. Compaction
    /// and retention only touch closed segments. Default 64 MiB; a topic's
    /// `segment.bytes` config overrides it.
    pub segment_bytes: u64,
    /// How often a waiting consumer looks for records written by another
    /// process. Writes in the same process wake it at once. Default 10 ms.
    pub poll_interval: Duration,
    /// How long a tombstone survives compaction (`delete.retention.ms`).
    /// Default 1 day, as in Kafka.
    pub delete_retention_ms: i64,
}

impl LocalLogConfig {
    /// Defaults, in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        LocalLogConfig {
            dir: dir.into(),
            segment_bytes: 64 * 1024 * 1024,
            poll_interval: Duration::from_millis(10),
            delete_retention_ms: 24 * 3600 * 1000,
        }
    }
}

/// What `topic.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TopicMeta {
    name: String,
    partitions: i32,
    cleanup_policy: String,
    #[serde(default)]
    retention_ms: Option<i64>,
    #[serde(default)]
    retention_bytes: Option<i64>,
    #[serde(default)]
    config: BTreeMap<String, String>,
}

impl TopicMeta {
    fn cleanup(&self) -> CleanupPolicy {
        CleanupPolicy::parse(&self.cleanup_policy).unwrap_or_default()
    }

    fn config_i64(&self, key: &str) -> Option<i64> {
        self.config.get(key).and_then(|v| v.parse().ok())
    }
}

/// Config keys the local log acts on; any other key is stored and ignored
/// (so a spec written for Kafka runs here too).
const LOCAL_CONFIG_KEYS: [&str; 2] = ["segment.bytes", "delete.retention.ms"];

pub(super) type WriterSlot = Arc<Mutex<PartitionWriter>>;

struct Shared {
    config: LocalLogConfig,
    topics: Mutex<HashMap<String, Arc<TopicMeta>>>,
    writers: Mutex<HashMap<(String, i32), WriterSlot>>,
    /// Bumped whenever records become visible; waiting consumers wake on it.
    written: (Mutex<u64>, Condvar),
}

/// The embedded log backend. Cheap to clone; clones share writers.
#[derive(Clone)]
pub struct LocalLog {
    shared: Arc<Shared>,
}

impl LocalLog {
    /// Opens (creating if needed) the log in `config.dir`.
    pub fn open(config: LocalLogConfig) -> Result<Self, TopicError> {
        let topics = config.dir.join("topics");
        fs::create_dir_all(&topics).map_err(TopicError::io(&topics))?;
        Ok(LocalLog {
            shared: Arc::new(Shared {
                config,
                topics: Mutex::new(HashMap::new()),
                writers: Mutex::new(HashMap::new()),
                written: (Mutex::new(0), Condvar::new()),
            }),
        })
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.shared.config.dir
    }

    fn topic_dir(&self, topic: &str) -> PathBuf {
        self.shared.config.dir.join("topics").join(topic)
    }

    fn meta(&self, topic: &str) -> Result<Arc<TopicMeta>, TopicError> {
        if let Some(m) = self.shared.topics.lock().expect("poisoned").get(topic) {
            return Ok(m.clone());
        }
        validate_topic_name(topic)?;
        let path = self.topic_dir(topic).join("topic.json");
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(TopicError::UnknownTopic(topic.into()));
            }
            Err(e) => return Err(TopicError::io(&path)(e)),
        };
        let meta: TopicMeta = serde_json::from_slice(&bytes).map_err(|e| TopicError::Corrupt {
            path: path.clone(),
            position: e.column() as u64,
            reason: e.to_string(),
        })?;
        let meta = Arc::new(meta);
        self.shared
            .topics
            .lock()
            .expect("poisoned")
            .insert(topic.into(), meta.clone());
        Ok(meta)
    }

    fn writer(&self, topic: &str, partition: i32) -> Result<WriterSlot, TopicError> {
        let key = (topic.to_string(), partition);
        if let Some(w) = self.shared.writers.lock().expect("poisoned").get(&key) {
            return Ok(w.clone());
        }
        let meta = self.meta(topic)?;
        let segment_bytes = meta
            .config_i64("segment.bytes")
            .map_or(self.shared.config.segment_bytes, |b| b.max(1024) as u64);
        let dir = self.topic_dir(topic).join(partition.to_string());
        let writer = Arc::new(Mutex::new(PartitionWriter::open(&dir, segment_bytes)?));
        Ok(self
            .shared
            .writers
            .lock()
            .expect("poisoned")
            .entry(key)
            .or_insert(writer)
            .clone())
    }

    /// Runs compaction and retention on every partition of `topic` that this
    /// process writes (or can lock for writing). It runs on its own after
    /// every segment roll; call it to force a pass.
    pub fn maintain(&self, topic: &str) -> Result<MaintenanceReport, TopicError> {
        let meta = self.meta(topic)?;
        let mut total = MaintenanceReport::default();
        for p in 0..meta.partitions {
            let w = self.writer(topic, p)?;
            let w = w.lock().expect("poisoned");
            let r = self.maintain_partition(&meta, &w)?;
            total.compacted_away += r.compacted_away;
            total.segments_deleted += r.segments_deleted;
        }
        Ok(total)
    }

    fn maintain_partition(
        &self,
        meta: &TopicMeta,
        w: &PartitionWriter,
    ) -> Result<MaintenanceReport, TopicError> {
        let cleanup = meta.cleanup();
        let rules = Maintenance {
            compact: cleanup.compacts(),
            delete_retention_ms: meta
                .config_i64("delete.retention.ms")
                .unwrap_or(self.shared.config.delete_retention_ms),
            retention_ms: meta
                .retention_ms
                .filter(|_| cleanup.deletes())
                .filter(|ms| *ms >= 0),
            retention_bytes: meta
                .retention_bytes
                .filter(|_| cleanup.deletes())
                .filter(|b| *b >= 0),
            now_ms: now_ms(),
        };
        maintenance::maintain(w, &rules)
    }

    fn notify_written(&self) {
        let (lock, cvar) = &self.shared.written;
        *lock.lock().expect("poisoned") += 1;
        cvar.notify_all();
    }
}

pub(crate) use super::now_ms;

impl Backend for LocalLog {
    fn kind(&self) -> &'static str {
        "local"
    }

    fn create_topic(&self, spec: &TopicSpec) -> Result<(), TopicError> {
        spec.validate()?;
        for key in spec.config.keys() {
            if !LOCAL_CONFIG_KEYS.contains(&key.as_str()) {
                tracing::info!(topic = %spec.name, key = %key, "local log stores but does not use this topic config");
            }
        }
        let dir = self.topic_dir(&spec.name);
        let meta_path = dir.join("topic.json");
        if meta_path.exists() {
            return Err(TopicError::TopicExists(spec.name.clone()));
        }
        fs::create_dir_all(&dir).map_err(TopicError::io(&dir))?;
        for p in 0..spec.partitions {
            let pdir = dir.join(p.to_string());
            fs::create_dir_all(&pdir).map_err(TopicError::io(&pdir))?;
        }
        let meta = TopicMeta {
            name: spec.name.clone(),
            partitions: spec.partitions,
            cleanup_policy: spec.cleanup.as_kafka().into(),
            retention_ms: spec.retention_ms,
            retention_bytes: spec.retention_bytes,
            config: spec.config.clone(),
        };
        // Written last and atomically: a topic exists once topic.json does.
        let tmp = dir.join("topic.json.tmp");
        fs::write(
            &tmp,
            serde_json::to_vec_pretty(&meta).expect("meta serializes"),
        )
        .map_err(TopicError::io(&tmp))?;
        fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(TopicError::io(&tmp))?;
        fs::rename(&tmp, &meta_path).map_err(TopicError::io(&meta_path))?;
        partition::sync_dir(&dir)?;
        Ok(())
    }

    fn list_topics(&self) -> Result<Vec<String>, TopicError> {
        let root = self.shared.config.dir.join("topics");
        let mut names = Vec::new();
        for entry in fs::read_dir(&root).map_err(TopicError::io(&root))? {
            let entry = entry.map_err(TopicError::io(&root))?;
            if entry.path().join("topic.json").exists() {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    fn describe_topic(&self, name: &str) -> Result<TopicDescription, TopicError> {
        let meta = self.meta(name)?;
        let mut partitions = Vec::new();
        for id in 0..meta.partitions {
            let dir = self.topic_dir(name).join(id.to_string());
            let (low, mut high) = partition::offsets_on_disk(&dir)?;
            let own = self
                .shared
                .writers
                .lock()
                .expect("poisoned")
                .get(&(name.to_string(), id))
                .cloned();
            if let Some(w) = own {
                high = high.max(w.lock().expect("poisoned").visible_high_watermark());
            }
            partitions.push(PartitionInfo {
                id,
                low: low.min(high),
                high,
            });
        }
        Ok(TopicDescription {
            name: name.into(),
            partitions,
            cleanup: Some(meta.cleanup()),
        })
    }

    fn producer(&self) -> Result<Box<dyn Producer>, TopicError> {
        Ok(Box::new(LocalProducer::new(self.clone())))
    }

    fn consumer(&self, group: Option<&str>) -> Result<Box<dyn Consumer>, TopicError> {
        Ok(Box::new(LocalConsumer::new(self.clone(), group)))
    }
}
