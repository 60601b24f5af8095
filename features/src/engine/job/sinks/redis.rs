//! A view's rows in Redis: the online store services read by key.
//!
//! The layout is Feast's: one hash per entity, `<pipeline>:<key
//! column>=<key>`, shared by every view keyed by that column, with a field
//! `<view>:<feature>` per feature (its value as JSON text) and `_ts:<view>`
//! (the row's `as_of`). Rows are held per task and written when the task
//! checkpoints, before its offsets are recorded: a crash loses nothing a
//! checkpoint covers. Only the latest row of each key is written.
//!
//! A replay after a crash re-emits rows the store may already hold, some
//! older than what it holds. The write is a Lua script that compares the
//! row's `as_of` with the hash's `_ts:<view>` and skips an older row, so a
//! replay never moves a value back in time: writes are idempotent and
//! monotonic. Skipped rows are counted in the run's summary.

use crate::engine::view::FeatureRow;
use crate::spec::RedisSpec;
use crate::spec::validate::ViewPlan;

use super::latest::{Upsert, without_password};
use super::{JobError, RunSummary};

/// Writes a row unless the hash holds a newer one for the view.
/// KEYS[1]: the entity's hash. ARGV: `_ts:<view>`, as_of, ttl ms (0: none),
/// then field, value pairs.
const UPSERT: &str = r#"
local held = redis.call('HGET', KEYS[1], ARGV[1])
if held and tonumber(held) > tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2], unpack(ARGV, 4))
local ttl = tonumber(ARGV[3])
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1
"#;

/// One view's rows to Redis.
pub struct RedisRows {
    /// `<pipeline>:<key column>=`.
    prefix: String,
    /// `_ts:<view>`.
    ts_field: String,
    /// `<view>:<feature>`, in feature order.
    fields: Vec<String>,
    ttl_ms: i64,
    url: String,
    client: redis::Client,
    connection: Option<redis::Connection>,
    script: Option<String>,
}

impl RedisRows {
    /// A view's rows to the store `spec` says, for pipeline `pipeline`.
    pub fn new(pipeline: &str, plan: &ViewPlan, spec: &RedisSpec) -> Result<RedisRows, JobError> {
        let client = redis::Client::open(spec.url.as_str()).map_err(|e| JobError::OnlineStore {
            url: without_password(&spec.url),
            why: e.to_string(),
        })?;
        Ok(RedisRows {
            prefix: format!("{pipeline}:{}=", plan.key),
            ts_field: format!("_ts:{}", plan.name),
            fields: plan
                .features
                .iter()
                .map(|f| format!("{}:{}", plan.name, f.column))
                .collect(),
            ttl_ms: spec.ttl.map_or(0, |t| t.0),
            url: without_password(&spec.url),
            client,
            connection: None,
            script: None,
        })
    }

    fn failed(&self, e: redis::RedisError) -> JobError {
        JobError::OnlineStore {
            url: self.url.clone(),
            why: e.to_string(),
        }
    }

    /// Writes `rows`: (key text, as_of, values); (written, skipped).
    fn write(&mut self, rows: Vec<(String, (i64, Vec<String>))>) -> Result<(u64, u64), JobError> {
        let (mut written, mut skipped) = (0, 0);
        if self.connection.is_none() {
            let c = self.client.get_connection().map_err(|e| self.failed(e))?;
            self.connection = Some(c);
        }
        let con = self.connection.as_mut().expect("connected");
        let sha: String = match &self.script {
            Some(s) => s.clone(),
            None => {
                let sha: String = redis::cmd("SCRIPT")
                    .arg("LOAD")
                    .arg(UPSERT)
                    .query(con)
                    .map_err(|e| JobError::OnlineStore {
                        url: self.url.clone(),
                        why: e.to_string(),
                    })?;
                self.script = Some(sha.clone());
                sha
            }
        };
        for chunk in rows.chunks(500) {
            let mut pipe = redis::pipe();
            for (key, (as_of, values)) in chunk {
                let cmd = pipe
                    .cmd("EVALSHA")
                    .arg(&sha)
                    .arg(1)
                    .arg(format!("{}{key}", self.prefix))
                    .arg(&self.ts_field)
                    .arg(*as_of)
                    .arg(self.ttl_ms);
                for (f, v) in self.fields.iter().zip(values) {
                    cmd.arg(f).arg(v);
                }
            }
            let done: Vec<i64> = pipe.query(con).map_err(|e| JobError::OnlineStore {
                url: self.url.clone(),
                why: e.to_string(),
            })?;
            let applied = done.iter().filter(|d| **d == 1).count() as u64;
            written += applied;
            skipped += done.len() as u64 - applied;
        }
        Ok((written, skipped))
    }
}

impl Upsert for RedisRows {
    fn upsert(&mut self, rows: Vec<(String, FeatureRow)>) -> Result<(u64, u64), JobError> {
        let rows = rows
            .into_iter()
            .map(|(key, row)| {
                let values = row.values.iter().map(|x| x.to_json().to_string()).collect();
                (key, (row.as_of, values))
            })
            .collect();
        self.write(rows)
    }

    fn reset(&mut self) {
        self.connection = None;
    }

    fn report(&self, written: u64, skipped: u64, summary: &mut RunSummary) {
        summary.online_store.0 += written;
        summary.online_store.1 += skipped;
    }
}
