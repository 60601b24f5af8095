//! Kafka backend tests against a real broker (tansu in CI, see `tests/run`).
//!
//! The broker comes from `EDDY_TEST_KAFKA_BROKERS`. Without it the tests say
//! so and pass, unless `EDDY_REQUIRE_EXTERNAL=1` (set by `tests/run` and CI),
//! where a missing broker fails them: CI must never skip these silently.

use std::time::Duration;

use super::{KafkaBackend, KafkaConfig};
use crate::topic::{Backend, TopicError, conformance};

/// The test broker, or `None` when the tests may be skipped.
pub(crate) fn test_brokers() -> Option<String> {
    match std::env::var("EDDY_TEST_KAFKA_BROKERS") {
        Ok(b) if !b.is_empty() => Some(b),
        _ => {
            assert!(
                std::env::var("EDDY_REQUIRE_EXTERNAL").as_deref() != Ok("1"),
                "EDDY_TEST_KAFKA_BROKERS is not set but EDDY_REQUIRE_EXTERNAL=1: start a broker (tests/run does)"
            );
            eprintln!("skipping: set EDDY_TEST_KAFKA_BROKERS to run Kafka tests");
            None
        }
    }
}

/// A topic prefix no other test run uses.
pub(crate) fn unique_prefix(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{what}-{}-{}", std::process::id(), nanos % 1_000_000_000)
}

#[test]
fn kafka_backend_passes_the_shared_behaviour_suite() {
    let Some(brokers) = test_brokers() else {
        return;
    };
    let backend = KafkaBackend::connect(KafkaConfig::new(brokers)).expect("connect");
    conformance::run_all(&backend, &unique_prefix("conf"));
}

#[test]
fn unreachable_broker_fails_within_the_timeout_and_names_it() {
    // Nothing listens on port 1 of the loopback address.
    let mut config = KafkaConfig::new("127.0.0.1:1");
    config.timeout = Duration::from_secs(2);
    let err = KafkaBackend::connect(config).err().expect("must fail");
    assert!(
        matches!(err, TopicError::BrokerUnreachable { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
}

#[test]
fn topics_are_created_with_partitions_and_cleanup_policy() {
    let Some(brokers) = test_brokers() else {
        return;
    };
    let backend = KafkaBackend::connect(KafkaConfig::new(brokers)).expect("connect");
    let name = unique_prefix("create");
    backend
        .create_topic(
            &crate::topic::TopicSpec::new(&name)
                .partitions(4)
                .compacted(),
        )
        .expect("create");
    assert_eq!(
        backend
            .describe_topic(&name)
            .expect("describe")
            .partitions
            .len(),
        4
    );
}
