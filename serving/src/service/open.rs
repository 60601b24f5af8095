//! Opening a service: the spec's serving section checked and planned,
//! the trigger and request topics, the candidate models and the ranker,
//! the item table and its rules, and the features, from their topics or
//! from the job's read API when co-located.

use super::*;

impl Service {
    /// A service apart from the pipeline: features and models from their
    /// topics.
    pub fn open(
        loaded: &LoadedSpec,
        backend: Arc<dyn Backend>,
        registry: Arc<dyn SchemaRegistry>,
        options: ServeOptions,
    ) -> Result<Service, ServeError> {
        Service::open_with(loaded, backend, registry, options, None)
    }

    /// A service inside the pipeline's process: features from the job's
    /// read API, models from the learner once they are published. The
    /// models topic is still read to its end at start, for the versions
    /// earlier runs published.
    pub fn open_colocated(
        loaded: &LoadedSpec,
        backend: Arc<dyn Backend>,
        registry: Arc<dyn SchemaRegistry>,
        options: ServeOptions,
        colocated: Colocated,
    ) -> Result<Service, ServeError> {
        Service::open_with(loaded, backend, registry, options, Some(colocated))
    }

    fn open_with(
        loaded: &LoadedSpec,
        backend: Arc<dyn Backend>,
        registry: Arc<dyn SchemaRegistry>,
        options: ServeOptions,
        colocated: Option<Colocated>,
    ) -> Result<Service, ServeError> {
        let spec = &loaded.spec;
        let serving = spec.serving.clone().ok_or(ServeError::NoServing)?;
        let problems = crate::plan::shape(loaded);
        if !problems.is_empty() {
            return Err(ServeError::Spec(SpecError::Invalid(problems)));
        }
        let lookup = schema_lookup(&registry);
        // Co-located, the job has planned the spec already.
        let (views, models) = match &colocated {
            Some(c) => c.plans.clone(),
            None => eddy_training::plan::validate_with_models(loaded, &lookup)
                .map_err(|p| ServeError::Spec(SpecError::Invalid(p)))?,
        };
        let schema_of = |topic: &str| -> Result<apache_avro::Schema, ServeError> {
            lookup(topic)
                .map_err(ServeError::Environment)?
                .ok_or_else(|| {
                    ServeError::Setup(format!(
                        "topic `{topic}` has no registered value schema: produce to it first"
                    ))
                })
        };
        // Triggers.
        let mut trigger = None;
        let mut trigger_columns = None;
        let mut partitions = 1;
        if let Some(name) = &serving.trigger {
            let source = &spec.sources[name];
            let schema = schema_of(&source.topic)?;
            let columns = source_columns(&schema, source.format).unwrap_or_default();
            partitions = backend
                .describe_topic(&source.topic)?
                .partitions
                .len()
                .max(1);
            trigger_columns = Some((name.clone(), columns.clone()));
            trigger = Some((
                source.topic.clone(),
                RecordDecoder::source(
                    registry.clone(),
                    schema,
                    &columns,
                    &source.key,
                    Some((&source.event_time, source.event_time_unit)),
                    source.format,
                ),
            ));
        }
        let used: Vec<&ModelPlan> = models
            .iter()
            .filter(|m| {
                serving.candidates.contains(&m.name) || serving.ranker.as_ref() == Some(&m.name)
            })
            .collect();
        let user_type = used
            .first()
            .and_then(|m| {
                let key = &spec.sources[&m.source].key;
                m.source_columns.get(key).cloned()
            })
            .unwrap_or(ColumnType::String);
        // The item table: business rules over it, and the candidates'
        // columns for the ranker.
        let rules = match &serving.item_table {
            Some(t) => {
                let table = &spec.tables[t];
                let schema = schema_of(&table.topic)?;
                Some(
                    ItemRules::new(
                        &table.topic,
                        &table.key,
                        schema,
                        &serving.rules,
                        registry.clone(),
                    )
                    .map_err(|e| ServeError::Setup(format!("serving.rules: {e}")))?,
                )
            }
            _ => None,
        };
        let engine = Engine::new(
            &serving,
            &models,
            trigger_columns.as_ref().map(|(n, c)| (n.as_str(), c)),
            rules,
        );
        let (features, learner_feed) = match colocated {
            Some(c) => (FeatureTables::in_process(c.reader, &views), Some(c.models)),
            None if serving.features_from == eddy_features::spec::serving::FeaturesFrom::Redis => {
                (FeatureTables::redis(&views, &spec.name)?, None)
            }
            None if serving.features_from
                == eddy_features::spec::serving::FeaturesFrom::Postgres =>
            {
                (FeatureTables::postgres(&views)?, None)
            }
            None => (FeatureTables::new(&views, registry.clone())?, None),
        };
        // Topics: outputs, and the state to follow.
        let topic = serving.topic();
        backend.ensure_topic(&TopicSpec::new(topic.clone()).partitions(partitions as i32))?;
        let mut model_topics: Vec<String> = Vec::new();
        for m in &used {
            backend.ensure_topic(&TopicSpec::new(m.topic.clone()).compacted())?;
            if !model_topics.contains(&m.topic) {
                model_topics.push(m.topic.clone());
            }
        }
        let mut follow: Vec<String> = Vec::new();
        for t in features.topics() {
            backend.ensure_topic(
                &TopicSpec::new(t.clone())
                    .partitions(partitions as i32)
                    .compacted(),
            )?;
            follow.push(t);
        }
        if let Some(r) = &engine.rules {
            follow.push(r.topic.clone());
        }
        let mut follower = backend.consumer(None)?;
        for t in &follow {
            follower.assign_all(t, StartOffset::Earliest)?;
        }
        let mut model_reader = backend.consumer(None)?;
        for t in &model_topics {
            model_reader.assign_all(t, StartOffset::Earliest)?;
        }
        let mut consumer = backend.consumer(None)?;
        let start = if options.from_earliest {
            StartOffset::Earliest
        } else {
            StartOffset::Latest
        };
        let mut ends = HashMap::new();
        let inputs: Vec<String> = trigger
            .iter()
            .map(|t| t.0.clone())
            .chain(serving.requests.clone())
            .collect();
        for t in &inputs {
            if serving.requests.as_ref() == Some(t) {
                backend.ensure_topic(&TopicSpec::new(t.clone()).partitions(partitions as i32))?;
            }
            consumer.assign_all(t, start)?;
            for p in backend.describe_topic(t)?.partitions {
                ends.insert((t.clone(), p.id), p.high);
            }
        }
        let codec = AvroCodec::new(registry.clone());
        let encoder = RecommendationEncoder::register(&codec, &topic)?;
        let state = State {
            engine,
            models: ModelSet::new(&used),
            features,
            latest_ts: i64::MIN,
            views,
            user_type,
            pulls: 0,
        };
        let mut service = Service {
            state: Arc::new(Mutex::new(state)),
            metrics: Arc::new(ServeMetrics::default()),
            name: spec.name.clone(),
            backend: backend.clone(),
            consumer,
            follower,
            producer: backend.producer()?,
            encoder,
            codec,
            trigger,
            requests: serving.requests.clone(),
            topic,
            dead_letters: DeadLetterTopics::default(),
            hold: serving.when_not_ready == NotReady::Hold,
            ends,
            options,
            loaded_models: None,
            loader_stop: Arc::new(AtomicBool::new(false)),
        };
        service.catch_up(&follow, &model_topics, model_reader.as_mut())?;
        let feed = match learner_feed {
            Some(rx) => ModelFeed::Learner {
                rx,
                topics: model_topics,
            },
            None => ModelFeed::Topics(model_reader),
        };
        service.start_loader(feed)?;
        if !service.options.from_earliest {
            service.read_history()?;
        }
        Ok(service)
    }
}
