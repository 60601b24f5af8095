//! The fault-injection suite: each fault a running pipeline can meet, made
//! on purpose, and what eddy must do about it. Nothing may be lost quietly:
//! either the result equals a clean run's, or the run stops with a message
//! naming the damage and exit code 11 (data lost or damaged) or 4 (brokers
//! gone past the outage timeout). README, "What eddy guarantees after a
//! fault", states the same rules.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::pipeline::{CLICK_SCHEMA, ITEM_SCHEMA, click_spec, clicks_between, items, table};
use crate::support::*;

/// A click pipeline on the local log in a temporary directory.
pub(crate) struct Shop {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) spec: PathBuf,
}

impl Shop {
    /// Topics `clicks` (with `partitions` and the given extra `topics
    /// create` arguments) and `items`, the item table loaded, and a spec
    /// over them.
    pub(crate) fn new(partitions: u32, create: &[&str]) -> Shop {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("click.avsc"), CLICK_SCHEMA).unwrap();
        std::fs::write(dir.path().join("item.avsc"), ITEM_SCHEMA).unwrap();
        let spec = dir.path().join("shop.yaml");
        std::fs::write(&spec, click_spec("shop", "clicks", "items", "features")).unwrap();
        let shop = Shop { dir, spec };
        let parts = partitions.to_string();
        let mut args = vec!["topics", "create", "clicks", "--partitions", &parts];
        args.extend(create);
        ok(shop.cmd(&args), "");
        ok(shop.cmd(&["topics", "create", "items", "--compact"]), "");
        shop.produce("items", "item", &items());
        shop
    }

    pub(crate) fn cmd(&self, args: &[&str]) -> Command {
        let mut c = eddy(&self.dir.path().join("eddy-data"));
        c.args(args);
        c
    }

    fn produce(&self, topic: &str, key: &str, lines: &str) {
        let schema = if topic == "items" {
            "item.avsc"
        } else {
            "click.avsc"
        };
        let schema = self.dir.path().join(schema).display().to_string();
        let mut args = vec![
            "topics",
            "produce",
            "--topic",
            topic,
            "--key-field",
            key,
            "--schema",
            &schema,
        ];
        // Record timestamps are event times (the archive's days follow them).
        if topic == "clicks" {
            args.extend(["--timestamp-field", "ts"]);
        }
        ok(self.cmd(&args), lines);
    }

    /// `eddy backfill --labels clicks --label-expr "amount > 50"` into
    /// `out` (under the shop's directory), with `extra` options.
    pub(crate) fn labels(&self, out: &str, extra: &[&str]) -> Command {
        let out_dir = self.dir.path().join(out).display().to_string();
        let mut c = self.cmd(&[
            "backfill",
            self.spec.to_str().unwrap(),
            "--labels",
            "clicks",
            "--label-expr",
            "amount > 50",
            "--out",
            &out_dir,
        ]);
        c.args(extra);
        c
    }

    pub(crate) fn clicks(&self, from: i64, to: i64) {
        self.produce("clicks", "user", &clicks_between(from, to));
    }

    fn ckpt(&self) -> PathBuf {
        self.dir.path().join("ckpt")
    }

    /// `eddy run --until-end`.
    fn run(&self) -> Command {
        let ckpt = self.ckpt().display().to_string();
        self.cmd(&[
            "run",
            self.spec.to_str().unwrap(),
            "--until-end",
            "--metrics-addr",
            "127.0.0.1:0",
            "--checkpoint-url",
            &ckpt,
        ])
    }

    fn partition_dir(&self, topic: &str, p: u32) -> PathBuf {
        self.dir
            .path()
            .join(format!("eddy-data/topics/{topic}/{p}"))
    }

    fn segments(&self, topic: &str, p: u32) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = std::fs::read_dir(self.partition_dir(topic, p))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        out.sort();
        out
    }

    /// The checkpoint objects of task `p`, oldest first.
    fn checkpoints(&self, p: u32) -> Vec<PathBuf> {
        let dir = self.ckpt().join(format!("shop/task-{p:05}"));
        let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        out.sort();
        out
    }

    /// The repartition topic of the re-keyed `per_item` view.
    fn repartition_topic(&self) -> String {
        let topics = ok(self.cmd(&["topics", "list"]), "");
        topics
            .lines()
            .map(str::trim)
            .find(|t| t.starts_with("shop.repartition-") && !t.ends_with(".dlq"))
            .unwrap_or_else(|| panic!("a repartition topic: {topics}"))
            .to_string()
    }

    /// The re-keyed view's table, by item.
    fn per_item(&self) -> std::collections::BTreeMap<String, serde_json::Value> {
        table(
            self.cmd(&["topics", "consume", "--topic", "features.per_item"]),
            "item",
        )
    }

    fn features(&self) -> std::collections::BTreeMap<String, serde_json::Value> {
        table(
            self.cmd(&["topics", "consume", "--topic", "features"]),
            "user",
        )
    }
}

fn flip_bit(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= 0x04;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_damaged_record_in_the_middle_of_the_active_segment_is_refused_not_cut_off() {
    let shop = Shop::new(1, &[]);
    shop.clicks(0, 500);
    let seg = shop.segments("clicks", 0).pop().unwrap();
    let len = std::fs::metadata(&seg).unwrap().len() as usize;
    flip_bit(&seg, len / 2);
    let damaged = std::fs::read(&seg).unwrap();
    // A producer opening the partition refuses to cut off the 250 records
    // after the damage (it did, and reused their offsets).
    let err = fails_with(
        {
            let mut c = shop.cmd(&["topics", "produce", "--topic", "clicks", "--schema"]);
            c.arg(shop.dir.path().join("click.avsc"));
            c
        },
        &clicks_between(500, 501),
        11,
    );
    assert!(
        err.contains("not a torn write; nothing was changed"),
        "{err}"
    );
    assert_eq!(std::fs::read(&seg).unwrap(), damaged);
    // The pipeline stops at the damage rather than skip it.
    let err = fails_with(shop.run(), "", 11);
    assert!(err.contains("is damaged at byte"), "{err}");
}

#[test]
fn a_truncated_closed_segment_stops_the_run_instead_of_skipping_its_records() {
    let shop = Shop::new(1, &["--config", "segment.bytes=4096"]);
    shop.clicks(0, 1000);
    let segments = shop.segments("clicks", 0);
    assert!(segments.len() > 3, "{segments:?}");
    let closed = &segments[1];
    let len = std::fs::metadata(closed).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(closed)
        .unwrap()
        .set_len(len - 20)
        .unwrap();
    let err = fails_with(shop.run(), "", 11);
    assert!(
        err.contains("the closed segment ends inside a record"),
        "{err}"
    );
}

#[test]
fn a_deleted_segment_stops_the_run_instead_of_skipping_its_records() {
    let shop = Shop::new(1, &["--config", "segment.bytes=4096"]);
    shop.clicks(0, 1000);
    let segments = shop.segments("clicks", 0);
    std::fs::remove_file(&segments[2]).unwrap();
    let err = fails_with(shop.run(), "", 11);
    assert!(
        err.contains("are missing (the segments holding them are gone"),
        "{err}"
    );
}

/// Regression: a source recreated (or emptied) under a pipeline resumed at
/// its old offsets, skipped every new record and reported success.
#[test]
fn a_checkpoint_past_the_end_of_a_recreated_source_stops_the_run() {
    let shop = Shop::new(1, &[]);
    shop.clicks(0, 600);
    let out = ok(shop.run(), "");
    assert!(out.starts_with("600 events"), "{out}");
    // The topic is recreated with fewer records than the checkpoint read.
    std::fs::remove_dir_all(shop.dir.path().join("eddy-data/topics/clicks")).unwrap();
    ok(shop.cmd(&["topics", "create", "clicks"]), "");
    shop.clicks(0, 100);
    let err = fails_with(shop.run(), "", 11);
    assert!(
        err.contains(
            "resumes `clicks` partition 0 at offset 600, but the topic now holds offsets 0..100"
        ),
        "{err}"
    );
    assert!(err.contains("past the end of the topic"), "{err}");
}

/// Retention deleted records the pipeline never read (it was stopped while
/// they came and went): it says so instead of resuming after the hole.
#[test]
fn a_checkpoint_behind_retention_stops_the_run() {
    let shop = Shop::new(
        1,
        &[
            "--config",
            "segment.bytes=4096",
            "--retention-bytes",
            "50000",
        ],
    );
    shop.clicks(0, 600);
    ok(shop.run(), "");
    shop.clicks(600, 2400);
    let err = fails_with(shop.run(), "", 11);
    assert!(
        err.contains("records between them were deleted (retention) before the task read them"),
        "{err}"
    );
}

/// Regression: checkpoints had no checksum, so a flipped bit could change
/// features; another task's checkpoint was accepted; a damaged newest one
/// stopped the job though the one before it was kept for this. Each damage
/// now falls back to the previous checkpoint, says so, and the table is
/// the same as without the damage.
#[test]
fn a_damaged_newest_checkpoint_falls_back_to_the_previous_one() {
    let shop = Shop::new(2, &[]);
    shop.clicks(0, 500);
    ok(shop.run(), "");
    shop.clicks(500, 1000);
    ok(shop.run(), "");
    let want = shop.features();
    assert_eq!(want.len(), 25);
    type Damage = fn(&Shop, &Path);
    let damages: [(&str, Damage); 3] = [
        ("checksum mismatch", |_, newest| {
            let len = std::fs::metadata(newest).unwrap().len() as usize;
            flip_bit(newest, len / 2);
        }),
        ("checksum mismatch", |_, newest| {
            let len = std::fs::metadata(newest).unwrap().len();
            std::fs::OpenOptions::new()
                .write(true)
                .open(newest)
                .unwrap()
                .set_len(len / 2)
                .unwrap();
        }),
        ("it belongs to task 1", |shop, newest| {
            let other = shop.checkpoints(1).pop().unwrap();
            std::fs::copy(other, newest).unwrap();
        }),
    ];
    for (why, damage) in damages {
        let newest = shop.checkpoints(0).pop().unwrap();
        damage(&shop, &newest);
        let out = ok(shop.run(), "");
        assert!(
            out.contains("warning: damaged checkpoint: task 0: passed over") && out.contains(why),
            "{why}: {out}"
        );
        assert_eq!(shop.features(), want, "{why}");
        // The run wrote a good checkpoint in place of the damaged one; the
        // next kind of damage hits that.
    }
    // A live run says so on /metrics too, where an operator watches.
    let newest = shop.checkpoints(0).pop().unwrap();
    flip_bit(&newest, 40);
    let ckpt = shop.ckpt().display().to_string();
    let live = LiveRun::start(shop.cmd(&[
        "run",
        shop.spec.to_str().unwrap(),
        "--metrics-addr",
        "127.0.0.1:0",
        "--checkpoint-url",
        &ckpt,
    ]));
    let (status, body) = crate::pipeline::http_get(&live.addr, "/metrics");
    live.stop();
    assert_eq!(status, 200);
    assert_eq!(
        crate::pipeline::metric(&body, "eddy_checkpoint_fallbacks_total"),
        1.0,
        "{body}"
    );
}

/// Regression: archive files are split by event day, and a backfill from
/// the archive dropped out-of-order events just after UTC midnight as
/// duplicates.
#[test]
fn a_backfill_from_the_archive_reads_every_event_across_utc_midnight() {
    let archive = "archive: { url: \"file://ARCHIVE\" }\n";
    let shop = Shop::new(1, &[]);
    let url = shop.dir.path().join("archive").display().to_string();
    let spec = std::fs::read_to_string(&shop.spec).unwrap() + &archive.replace("ARCHIVE", &url);
    std::fs::write(&shop.spec, spec).unwrap();
    // The fixture's clicks are a second apart from 22:13:20 UTC, up to 4 s
    // out of order: 8,000 of them cross midnight.
    shop.clicks(0, 8000);
    let out = ok(shop.run(), "");
    assert!(out.starts_with("8000 events"), "{out}");
    let days: Vec<String> = std::fs::read_dir(shop.dir.path().join("archive/clicks"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(days.len() >= 2, "{days:?}");
    let out = ok(shop.labels("from-archive", &[]), "");
    assert!(
        out.contains("8000 from the archive, 0 from topics"),
        "{out}"
    );
    assert!(!out.contains("warning"), "{out}");
}

/// A free port on the loopback interface.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A tansu broker of its own, storing in SQLite so that it can be killed
/// and restarted with its topics intact.
struct Broker {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl Broker {
    fn start() -> Option<Broker> {
        // Only where the suite runs against tansu.
        external("EDDY_TEST_KAFKA_BROKERS")?;
        let mut b = Broker {
            dir: tempfile::tempdir().unwrap(),
            port: free_port(),
            child: None,
        };
        b.up();
        Some(b)
    }

    fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn up(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("broker.log"))
            .unwrap();
        let child = Command::new("tansu")
            .current_dir(self.dir.path())
            .args([
                "broker",
                "--storage-engine",
                "sqlite://tansu.db",
                "--kafka-listener-url",
                &url,
                "--kafka-advertised-listener-url",
                &url,
            ])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("tansu on PATH (tests/run installs it)");
        watchdog(child.id());
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "tansu did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child = Some(child);
    }

    /// kill -9.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An `eddy` command on `broker` (the built-in registry on its `_schemas`).
fn on(broker: &Broker, dir: &Path, args: &[&str]) -> Command {
    let mut c = eddy(dir);
    c.args(["--brokers", &broker.brokers()]).args(args);
    c
}

fn load(broker: &Broker, dir: &Path, from: i64, to: i64) {
    std::fs::write(dir.join("click.avsc"), CLICK_SCHEMA).unwrap();
    let schema = dir.join("click.avsc").display().to_string();
    ok(
        on(
            broker,
            dir,
            &[
                "topics",
                "produce",
                "--topic",
                "clicks",
                "--key-field",
                "user",
                "--schema",
                &schema,
            ],
        ),
        &clicks_between(from, to),
    );
}

fn broker_shop(broker: &Broker, dir: &Path) -> PathBuf {
    std::fs::write(dir.join("item.avsc"), ITEM_SCHEMA).unwrap();
    ok(on(broker, dir, &["topics", "create", "clicks"]), "");
    ok(
        on(broker, dir, &["topics", "create", "items", "--compact"]),
        "",
    );
    let schema = dir.join("item.avsc").display().to_string();
    ok(
        on(
            broker,
            dir,
            &[
                "topics",
                "produce",
                "--topic",
                "items",
                "--key-field",
                "item",
                "--schema",
                &schema,
            ],
        ),
        &items(),
    );
    let spec = dir.join("shop.yaml");
    std::fs::write(&spec, click_spec("shop", "clicks", "items", "features")).unwrap();
    spec
}

fn live_on(broker: &Broker, dir: &Path, spec: &Path, outage_timeout: &str) -> Command {
    let ckpt = dir.join("ckpt").display().to_string();
    on(
        broker,
        dir,
        &[
            "--broker-outage-timeout",
            outage_timeout,
            "run",
            spec.to_str().unwrap(),
            "--standalone",
            "--metrics-addr",
            "127.0.0.1:0",
            "--checkpoint-url",
            &ckpt,
        ],
    )
}

/// Regression: a 5-second broker outage ended a live pipeline with
/// `BrokerTransportFailure`, exit 1. librdkafka reconnects by itself; the
/// job waits, says so, and goes on with every record.
#[test]
fn a_broker_killed_for_5s_mid_run_no_longer_ends_the_pipeline() {
    let Some(mut broker) = Broker::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let spec = broker_shop(&broker, dir.path());
    load(&broker, dir.path(), 0, 1000);
    let live = LiveRun::start(live_on(&broker, dir.path(), &spec, "60"));
    live.wait_for(1000.0);
    broker.kill();
    std::thread::sleep(Duration::from_secs(5));
    broker.up();
    load(&broker, dir.path(), 1000, 2000);
    live.wait_for(2000.0);
    // The operator sees it on /metrics, not only in the log.
    let (_, body) = crate::pipeline::http_get(&live.addr, "/metrics");
    let outages = crate::pipeline::metric(&body, "eddy_broker_outages_total");
    let out = live.stop();
    assert!(
        outages >= 1.0,
        "eddy_broker_outages_total {outages}: {body}"
    );
    assert!(out.contains("2000 events"), "{out}");
    // The fixture's three late clicks, and nothing else.
    assert!(
        out.contains("3 late, 0 undecodable records, 3 dead-lettered"),
        "{out}"
    );
}

/// Brokers gone for longer than `--broker-outage-timeout` stop the job with
/// exit code 4 (environment), naming how long and what failed.
#[test]
fn a_broker_gone_past_the_outage_timeout_stops_the_pipeline_with_exit_4() {
    let Some(mut broker) = Broker::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let spec = broker_shop(&broker, dir.path());
    load(&broker, dir.path(), 0, 500);
    let mut cmd = live_on(&broker, dir.path(), &spec, "3");
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    watchdog(child.id());
    // Give it time to read everything, then take the broker away for good.
    std::thread::sleep(Duration::from_secs(3));
    broker.kill();
    let out = child.wait_with_output().unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("gone for"), "{err}");
}

/// Regression: `eddy learn` could not read the training sets eddy writes:
/// a directory gave "Is a directory", a part with a `top_k` or `last_k`
/// feature "cannot cast List type", even with `--ignore` on those columns.
#[test]
fn eddy_learn_could_not_read_the_training_set_eddy_backfill_writes() {
    let shop = Shop::new(2, &[]);
    shop.clicks(0, 3000);
    let out_dir = shop.dir.path().join("set");
    let out = ok(shop.labels("set", &[]), "");
    let rows: u64 = out
        .split("training set: ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    let training = out_dir.join("training");
    let learn = |extra: &[&str]| {
        let mut c = shop.cmd(&["learn", "--input"]);
        c.arg(&training)
            .args(["--label", "label", "--json"])
            .args(extra);
        let got = json_lines(&ok(c, ""));
        got[0].clone()
    };
    // Lists as categories (one per element), the whole directory.
    let all = learn(&["--ignore", "event_time,offset,partition"]);
    assert_eq!(
        all["examples"].as_u64().unwrap() + all["skipped"].as_u64().unwrap(),
        rows
    );
    assert_eq!(all["skipped"].as_u64(), Some(0), "{all}");
    // And with the list columns left out.
    let without = learn(&[
        "--ignore",
        "event_time,offset,partition,top_cat_lifetime,last_items_10m",
    ]);
    assert_eq!(without["examples"].as_u64(), Some(rows), "{without}");
    assert_ne!(all["logloss"], without["logloss"], "the lists were read");
}

/// Regression: the signal handlers were installed by a thread that could
/// run after eddy announced its address, so a Ctrl-C right then (CI, on a
/// loaded machine, stopping `eddy serve` at once) killed the process with
/// no output, no flush and no checkpoint. Now the handlers exist before
/// the announcement: stopping at once is a clean stop, every time.
#[test]
fn a_ctrl_c_right_after_eddy_announces_itself_stops_it_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("eddy-data");
    let cmd = |args: &[&str]| {
        let mut c = eddy(&data);
        c.args(args);
        c
    };
    let clicks = crate::pipeline::load_clicks(d, &cmd, "", 200);
    let spec = clicks.spec.to_str().unwrap();
    for round in 0..3 {
        let ckpt = d.join(format!("ckpt-{round}")).display().to_string();
        let live = LiveRun::start(cmd(&[
            "run",
            spec,
            "--metrics-addr",
            "127.0.0.1:0",
            "--checkpoint-url",
            &ckpt,
        ]));
        // Stopped at once: LiveRun::stop asserts a clean exit.
        live.stop();
    }
}

/// A record in the repartition topic that eddy did not write (a stray
/// producer, another version): dead-lettered with its reason and counted,
/// never read as a re-keyed event or skipped silently; the per-item view
/// equals a clean run's.
#[test]
fn a_record_eddy_did_not_write_in_the_repartition_topic_is_dead_lettered() {
    let clean = Shop::new(2, &[]);
    clean.clicks(0, 1000);
    ok(clean.run(), "");

    let shop = Shop::new(2, &[]);
    shop.clicks(0, 500);
    ok(shop.run(), "");
    let repartition = shop.repartition_topic();
    ok(
        shop.cmd(&["topics", "produce", "--topic", &repartition]),
        "{\"not\": \"a re-keyed event\"}\n",
    );
    shop.clicks(500, 1000);
    let out = ok(shop.run(), "");
    assert!(out.contains(" 1 dead-lettered"), "{out}");
    assert!(
        out.contains("records through the repartition topic"),
        "the summary counts re-keyed traffic: {out}"
    );
    let dlq = json_lines(&ok(
        shop.cmd(&[
            "topics",
            "consume",
            "--topic",
            &format!("{repartition}.dlq"),
        ]),
        "",
    ));
    assert_eq!(dlq.len(), 1, "{dlq:?}");
    let (want, got) = (clean.per_item(), shop.per_item());
    assert!(!want.is_empty());
    assert_eq!(want, got);
}

/// Regression: the second of two bounded runs (new records after a
/// finished run) finished its re-keyed views on the first run's marks and
/// stopped before the new events reached them, which were never counted.
#[test]
fn a_second_bounded_run_counted_no_new_event_of_a_rekeyed_view() {
    let clean = Shop::new(3, &[]);
    clean.clicks(0, 900);
    ok(clean.run(), "");
    let shop = Shop::new(3, &[]);
    shop.clicks(0, 300);
    ok(shop.run(), "");
    shop.clicks(300, 600);
    ok(shop.run(), "");
    shop.clicks(600, 900);
    ok(shop.run(), "");
    let want = clean.per_item();
    assert!(!want.is_empty());
    assert_eq!(want, shop.per_item());
}

/// Regression: re-keyed events went to the repartition topic stamped with
/// their event time. Retention (7 days) counts from the record timestamp,
/// so a replay of older events could be deleted before the receiving task
/// read it. They are stamped with the time they were sent.
#[test]
fn repartition_records_stamped_with_event_time_could_expire_before_they_were_read() {
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let shop = Shop::new(2, &[]);
    shop.clicks(0, 200);
    ok(shop.run(), "");
    let repartition = shop.repartition_topic();
    let records = json_lines(&ok(
        shop.cmd(&[
            "topics",
            "consume",
            "--topic",
            &repartition,
            "--envelope",
            "--format",
            "raw",
        ]),
        "",
    ));
    assert!(records.len() > 200, "rows and marks: {}", records.len());
    for r in &records {
        // The clicks are of November 2023; the records of now.
        assert!(r["timestamp"].as_i64().unwrap() >= started, "{r}");
    }
}
