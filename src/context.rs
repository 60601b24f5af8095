//! Turns the global flags into a topic backend and a schema registry.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use eddy_features::registry::SchemaRegistry;
use eddy_features::registry::client::HttpRegistry;
use eddy_features::registry::store::{DEFAULT_TOPIC, SchemaStore};
use eddy_features::topic::kafka::KafkaConfig;
use eddy_features::topic::{Backend, BackendConfig, local::LocalLogConfig, open_backend};

use crate::cli::Global;
use crate::exit::{CliError, ExitCode};

/// An opened backend, with the registry opened on first use.
pub struct Context {
    pub backend: Arc<dyn Backend>,
    registry_url: Option<String>,
    registry: Option<Arc<dyn SchemaRegistry>>,
    /// Where the local log lives (None on Kafka).
    pub data_dir: Option<std::path::PathBuf>,
}

/// Parses `key=value` pairs; names the offending one.
pub fn parse_pairs(pairs: &[String], what: &str) -> anyhow::Result<BTreeMap<String, String>> {
    pairs
        .iter()
        .map(|p| match p.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                Ok((k.trim().to_string(), v.trim().to_string()))
            }
            _ => Err(CliError::fail(
                ExitCode::Usage,
                format!("{what} `{p}` is not key=value"),
            )),
        })
        .collect()
}

/// Reads a librdkafka properties file; errors name the file and line.
fn read_properties(path: &std::path::Path) -> anyhow::Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        CliError::fail(
            ExitCode::Usage,
            format!("cannot read Kafka config {}: {e}", path.display()),
        )
    })?;
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                let (k, v) = (k.trim(), v.trim());
                KafkaConfig::validate_property(k, v).map_err(|why| {
                    CliError::fail(
                        ExitCode::Usage,
                        format!("{}:{}: key `{k}`: {why}", path.display(), n + 1),
                    )
                })?;
                out.insert(k.to_string(), v.to_string());
            }
            _ => {
                return Err(CliError::fail(
                    ExitCode::Usage,
                    format!(
                        "{}:{}: expected key=value, got `{line}`",
                        path.display(),
                        n + 1
                    ),
                ));
            }
        }
    }
    Ok(out)
}

impl Context {
    /// The backend config the flags select.
    pub fn backend_config(global: &Global) -> anyhow::Result<BackendConfig> {
        Ok(match &global.brokers {
            None => BackendConfig::Local(LocalLogConfig::new(&global.data_dir)),
            Some(brokers) => {
                let mut config = KafkaConfig::new(brokers.clone());
                config.timeout = Duration::from_secs(global.timeout.max(1));
                config.outage_timeout = Duration::from_secs(global.broker_outage_timeout.max(1));
                if let Some(file) = &global.kafka_config {
                    config.properties.extend(read_properties(file)?);
                }
                for (k, v) in parse_pairs(&global.kafka_properties, "Kafka property")? {
                    KafkaConfig::validate_property(&k, &v).map_err(|why| {
                        CliError::fail(ExitCode::Usage, format!("-X {k}={v}: {why}"))
                    })?;
                    config.properties.insert(k, v);
                }
                BackendConfig::Kafka(config)
            }
        })
    }

    /// Opens the backend the flags select.
    pub fn open(global: &Global) -> anyhow::Result<Self> {
        let config = Self::backend_config(global)?;
        let backend = open_backend(&config).context("opening the topic backend")?;
        let data_dir = matches!(config, BackendConfig::Local(_)).then(|| global.data_dir.clone());
        Ok(Context {
            backend,
            registry_url: global.registry.clone(),
            registry: None,
            data_dir,
        })
    }

    /// The schema registry: `--registry`, or the built-in one on `_schemas`.
    pub fn registry(&mut self) -> anyhow::Result<Arc<dyn SchemaRegistry>> {
        if let Some(r) = &self.registry {
            return Ok(r.clone());
        }
        let registry: Arc<dyn SchemaRegistry> = match &self.registry_url {
            Some(url) => Arc::new(HttpRegistry::new(url)?),
            None => Arc::new(
                SchemaStore::open(self.backend.clone(), DEFAULT_TOPIC)
                    .context("opening the built-in schema registry")?,
            ),
        };
        self.registry = Some(registry.clone());
        Ok(registry)
    }

    /// The registry if one is configured or the built-in one already has a
    /// topic; `None` means no schemas can exist. Never creates anything.
    pub fn existing_registry(&mut self) -> anyhow::Result<Option<Arc<dyn SchemaRegistry>>> {
        if self.registry_url.is_some()
            || self
                .backend
                .list_topics()?
                .iter()
                .any(|t| t == DEFAULT_TOPIC)
        {
            return self.registry().map(Some);
        }
        Ok(None)
    }
}
