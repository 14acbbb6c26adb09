//! The `citeflow` configuration: a TOML file (`--config` or `CITEFLOW_CONFIG`) with
//! environment overrides, validated at start so that a bad setting stops the program with a
//! message naming it.

use std::path::{Path, PathBuf};

use citeflow_connectors::kafka::admin::is_topic_name;
use citeflow_connectors::kafka::sink::KafkaSinkConfig;
use citeflow_connectors::kafka::KafkaConfig;
use citeflow_connectors::postgres::PostgresConfig;
use citeflow_engine::config::{env_override, load_toml, parse_duration, parse_toml, ConfigError, EngineConfig};
use citeflow_operators::inference::runtime_library;
use citeflow_operators::lateness::LatePolicy;
use citeflow_operators::watermark::WatermarkSettings;
use citeflow_operators::window::Windows;
use serde::Deserialize;

use crate::autoscale::AutoscalerConfig;
use crate::dataflow::MatcherLogic;
use crate::envelope::{FutureEventTime, FuturePolicy};
use crate::matching::{DecisionRule, ModelSource, Scorer, SCORE_SCALE};
use crate::periods::PeriodLogic;
use crate::views::VIEWS;

/// Topic names.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TopicsConfig {
    /// EPMC publication records.
    pub publications: String,
    /// Policy documents.
    pub documents: String,
    /// Where unusable messages go.
    pub dead_letter: String,
    /// Partitions of the input topics when `citeflow topics` creates them.
    pub partitions: i32,
    /// Run on input topics whose messages can expire (`cleanup.policy` with `delete` and a
    /// finite `retention.ms` or `retention.bytes`). The job rebuilds its state by replaying its
    /// topics, so by default it refuses them; with this set, a restart's reconciliation keeps
    /// the rows it did not rebuild instead of deleting them (a row whose messages expired stays
    /// as it was last written).
    pub accept_expiring_messages: bool,
}

impl Default for TopicsConfig {
    fn default() -> Self {
        TopicsConfig {
            publications: "epmc.publications".into(),
            documents: "policy.documents".into(),
            dead_letter: "citeflow.dead-letter".into(),
            partitions: 4,
            accept_expiring_messages: false,
        }
    }
}

/// One matcher: how candidates are scored and decided, and the name its citations carry.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MatcherConfig {
    /// The matcher version recorded with each citation.
    pub matcher: String,
    /// The lowest score (0 to 1) that makes a candidate a citation; by default 0.5 for a
    /// learned scorer (a probability) and 0.8 for the rules.
    pub min_score: Option<f64>,
    /// How far (0 to 1) the best candidate must score above any other publication.
    pub margin: f64,
    /// The scorer: empty for the learned scorer built into citeflow, `rules` for the
    /// hand-written rules, or an ONNX model file trained on `citeflow features` (watched for
    /// replacements while the job runs).
    pub model: String,
    /// ONNX Runtime's shared library; empty to use the one `scripts/services.sh install` puts in
    /// `~/.cache/citeflow/python`.
    pub onnx_runtime: String,
}

/// The `model` setting that selects the rule scorer.
pub const RULES: &str = "rules";

impl Default for MatcherConfig {
    fn default() -> Self {
        MatcherConfig { matcher: "learned-v2".into(), min_score: None, margin: 0.02, model: String::new(), onnx_runtime: String::new() }
    }
}

impl MatcherConfig {
    /// The scorer these settings ask for; `setting` names this matcher in errors.
    pub fn scorer(&self, setting: &str) -> Result<Scorer, ConfigError> {
        let model = match self.model.as_str() {
            RULES => return Ok(Scorer::Rules),
            "" => ModelSource::Bundled,
            path if Path::new(path).is_file() => ModelSource::File(PathBuf::from(path)),
            path => return Err(ConfigError::invalid(format!("{setting}.model"), format!("{path} is not a file"))),
        };
        let runtime = match self.onnx_runtime.as_str() {
            "" => runtime_library().ok_or_else(|| {
                ConfigError::invalid(
                    format!("{setting}.onnx_runtime"),
                    "ONNX Runtime not found; run scripts/services.sh install, set ORT_DYLIB_PATH, or choose model = \"rules\"",
                )
            })?,
            path => PathBuf::from(path),
        };
        if !runtime.is_file() {
            return Err(ConfigError::invalid(format!("{setting}.onnx_runtime"), format!("{} is not a file", runtime.display())));
        }
        Ok(Scorer::Model { runtime, model })
    }

    /// The lowest score of a citation, the default depending on the scorer.
    fn min_score(&self) -> f64 {
        self.min_score.unwrap_or(if self.model == RULES { 0.8 } else { 0.5 })
    }

    /// When this matcher's best candidate becomes a citation.
    pub fn decision(&self) -> DecisionRule {
        DecisionRule { min_score: (self.min_score() * SCORE_SCALE).round() as u32, margin: (self.margin * SCORE_SCALE).round() as u32 }
    }

    /// The matcher as the dataflow runs it.
    pub fn logic(&self, setting: &str) -> Result<MatcherLogic, ConfigError> {
        Ok(MatcherLogic { name: self.matcher.clone(), decision: self.decision(), scorer: self.scorer(setting)? })
    }

    fn validate(&self, setting: &str) -> Result<(), ConfigError> {
        if !(0.0..=1.0).contains(&self.min_score()) {
            return Err(ConfigError::invalid(format!("{setting}.min_score"), "must be between 0 and 1"));
        }
        if !(0.0..=1.0).contains(&self.margin) {
            return Err(ConfigError::invalid(format!("{setting}.margin"), "must be between 0 and 1"));
        }
        if self.matcher.trim().is_empty() {
            return Err(ConfigError::invalid(format!("{setting}.matcher"), "must name the matcher version"));
        }
        self.scorer(setting).map(|_| ())
    }
}

/// Matching: one matcher, or two side by side (A/B) sharing candidate generation, each
/// writing its own citation rows, compared in the `matcher_comparison` view.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MatchingConfig {
    /// The matchers; the first is primary (its citations are counted per publication).
    /// `CITEFLOW_MATCHER`, `CITEFLOW_MIN_SCORE`, `CITEFLOW_MODEL` and `ORT_DYLIB_PATH` override
    /// the first.
    pub matchers: Vec<MatcherConfig>,
}

impl Default for MatchingConfig {
    fn default() -> Self {
        MatchingConfig { matchers: vec![MatcherConfig::default()] }
    }
}

impl MatchingConfig {
    /// Every matcher as the dataflow runs it.
    pub fn logic(&self) -> Result<Vec<MatcherLogic>, ConfigError> {
        self.matchers.iter().enumerate().map(|(index, m)| m.logic(&format!("matching.matchers[{index}]"))).collect()
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=2).contains(&self.matchers.len()) {
            return Err(ConfigError::invalid("matching.matchers", "configure one matcher, or two to compare"));
        }
        for (index, matcher) in self.matchers.iter().enumerate() {
            matcher.validate(&format!("matching.matchers[{index}]"))?;
        }
        if self.matchers.len() == 2 && self.matchers[0].matcher == self.matchers[1].matcher {
            return Err(ConfigError::invalid("matching.matchers[1].matcher", "two matchers need different names"));
        }
        Ok(())
    }
}

/// Event time: the watermark over the documents topic and the periods of
/// `citations_per_period`. Durations are written with a unit: `500 ms`, `30 s`, `12 h`,
/// `7 days`, `2 weeks`; a period may also be `N months` (calendar months).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventTimeConfig {
    /// Length of a period.
    pub period: String,
    /// How far behind the latest `published_at` seen on a partition its watermark stays.
    pub out_of_orderness: String,
    /// A partition without messages for this long stops holding the watermark back.
    pub idle_timeout: String,
    /// How long after its end a period still takes documents on time.
    pub allowed_lateness: String,
    /// Watermarks move in steps of this.
    pub resolution: String,
    /// What happens to a document for a closed period: `apply` or `dead_letter`.
    pub late_policy: String,
    /// How far a document's `published_at` may be ahead of its message's timestamp.
    pub max_ahead: String,
    /// What happens to a document beyond `max_ahead`: `dead_letter` (reason
    /// `future_event_time`) or `clamp` (its `published_at` becomes the bound).
    pub future_policy: String,
}

impl Default for EventTimeConfig {
    fn default() -> Self {
        EventTimeConfig {
            period: "1 month".into(),
            out_of_orderness: "7 days".into(),
            idle_timeout: "30 s".into(),
            allowed_lateness: "0 days".into(),
            resolution: "1 day".into(),
            late_policy: "apply".into(),
            max_ahead: "1 day".into(),
            future_policy: "dead_letter".into(),
        }
    }
}

impl EventTimeConfig {
    /// The bound on event times ahead of their messages.
    pub fn future(&self) -> Result<FutureEventTime, ConfigError> {
        let policy = match self.future_policy.as_str() {
            "dead_letter" => FuturePolicy::DeadLetter,
            "clamp" => FuturePolicy::Clamp,
            other => return Err(ConfigError::invalid("event_time.future_policy", format!("`{other}` is not `dead_letter` or `clamp`"))),
        };
        Ok(FutureEventTime { ahead_ms: parse_duration("event_time.max_ahead", &self.max_ahead)?, policy })
    }

    /// The settings as the dataflow runs them (without the runtime's partitions and log).
    pub fn logic(&self, topic: &str) -> Result<PeriodLogic, ConfigError> {
        let duration = |setting: &str, text: &str| parse_duration(&format!("event_time.{setting}"), text);
        let positive = |setting: &str, text: &str| {
            let value = duration(setting, text)?;
            if value > 0 {
                Ok(value)
            } else {
                Err(ConfigError::invalid(format!("event_time.{setting}"), "must be longer than zero"))
            }
        };
        let windows = match self.period.trim().strip_suffix("months").or_else(|| self.period.trim().strip_suffix("month")) {
            Some(count) => match count.trim().parse::<i64>() {
                Ok(months) if months > 0 => Windows::CalendarMonths { months },
                _ => {
                    return Err(ConfigError::invalid("event_time.period", format!("`{}` is not a positive number of months", self.period)))
                }
            },
            None => Windows::Tumbling { size: positive("period", &self.period)?, offset: 0 },
        };
        let policy = match self.late_policy.as_str() {
            "apply" => LatePolicy::Apply,
            "dead_letter" => LatePolicy::DeadLetter,
            other => return Err(ConfigError::invalid("event_time.late_policy", format!("`{other}` is not `apply` or `dead_letter`"))),
        };
        Ok(PeriodLogic {
            windows,
            allowed_lateness: duration("allowed_lateness", &self.allowed_lateness)?,
            policy,
            watermarks: WatermarkSettings {
                out_of_orderness: duration("out_of_orderness", &self.out_of_orderness)?,
                idle_timeout: duration("idle_timeout", &self.idle_timeout)? as u64,
                resolution: positive("resolution", &self.resolution)?,
            },
            topic: topic.to_string(),
            partitions: Vec::new(),
            log: Vec::new(),
            replay_to: Default::default(),
        })
    }
}

/// Where the job reads its input topics.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceConfig {
    /// The topics on `kafka.brokers`.
    #[default]
    Kafka,
    /// A topic archive (`citeflow archive` writes one; see `citeflow_connectors::archive`):
    /// the same messages at the same offsets, read from files. Without Kafka, dead letters are
    /// recorded in the database only (a later run on Kafka publishes them).
    Archive {
        /// The archive's directory.
        dir: PathBuf,
    },
}

/// The job itself.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobSection {
    /// The job's name (env `CITEFLOW_JOB_NAME`): its tables live in the PostgreSQL schema of
    /// that name, so jobs with different names share a database without fencing each other or
    /// touching each other's rows. Without a name, the tables are in the connection's default
    /// schema (`public`).
    pub name: Option<String>,
}

/// The whole configuration.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CiteflowConfig {
    /// The job itself.
    pub job: JobSection,
    /// Runtime settings.
    pub engine: EngineConfig,
    /// Where the input topics are read.
    pub source: SourceConfig,
    /// Kafka clients.
    pub kafka: KafkaConfig,
    /// PostgreSQL.
    pub postgres: PostgresConfig,
    /// Topic names.
    pub topics: TopicsConfig,
    /// Matching.
    pub matching: MatchingConfig,
    /// Event time.
    pub event_time: EventTimeConfig,
    /// The Kafka sink: views written to change topics too (off without the section).
    pub kafka_sink: Option<KafkaSinkConfig>,
    /// `citeflow autoscale`.
    pub autoscaler: AutoscalerConfig,
    /// The file the configuration was read from, if any: the running job watches it and
    /// applies new decision rules (`min_score`, `margin`) without a restart.
    #[serde(skip)]
    pub file: Option<PathBuf>,
}

impl CiteflowConfig {
    /// Loads the file (if any), applies environment overrides and validates.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let config = CiteflowConfig { file: path.map(Path::to_path_buf), ..load_toml(path)? };
        config.with_env()
    }

    /// Parses TOML text (`origin` names it in errors), applies environment overrides and
    /// validates.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        parse_toml::<CiteflowConfig>(text, origin)?.with_env()
    }

    fn with_env(mut self) -> Result<Self, ConfigError> {
        let config = &mut self;
        config.engine.apply_env()?;
        config.kafka.apply_env()?;
        config.postgres.apply_env()?;
        if let Ok(name) = std::env::var("CITEFLOW_JOB_NAME") {
            config.job.name = Some(name);
        }
        config.postgres.schema = config.job.name.clone();
        if let Some(primary) = config.matching.matchers.first_mut() {
            env_override(&mut primary.matcher, "CITEFLOW_MATCHER")?;
            env_override(&mut primary.model, "CITEFLOW_MODEL")?;
            if std::env::var_os("CITEFLOW_MIN_SCORE").is_some() {
                let mut min_score = primary.min_score();
                env_override(&mut min_score, "CITEFLOW_MIN_SCORE")?;
                primary.min_score = Some(min_score);
            }
            env_override(&mut primary.onnx_runtime, "ORT_DYLIB_PATH")?;
        }
        config.validate()?;
        Ok(self)
    }

    /// The decision rule of every matcher, by matcher name.
    pub fn decision_rules(&self) -> Vec<(String, DecisionRule)> {
        self.matching.matchers.iter().map(|matcher| (matcher.matcher.clone(), matcher.decision())).collect()
    }

    /// Checks every section.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(name) = &self.job.name {
            let valid = name.len() <= 63
                && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
                && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !valid {
                return Err(ConfigError::invalid(
                    "job.name",
                    format!("`{name}` is not a lower-case PostgreSQL identifier (a-z, 0-9, _; at most 63)"),
                ));
            }
        }
        self.engine.validate()?;
        if let SourceConfig::Archive { dir } = &self.source {
            if !dir.is_dir() {
                return Err(ConfigError::invalid("source.dir", format!("`{}` is not a directory", dir.display())));
            }
        }
        self.kafka.validate()?;
        self.postgres.validate()?;
        let topics = [
            ("topics.publications", &self.topics.publications),
            ("topics.documents", &self.topics.documents),
            ("topics.dead_letter", &self.topics.dead_letter),
        ];
        for (setting, topic) in topics {
            if !is_topic_name(topic) {
                return Err(ConfigError::invalid(setting, format!("`{topic}` is not a valid topic name")));
            }
        }
        if self.topics.publications == self.topics.documents {
            return Err(ConfigError::invalid("topics.documents", "must differ from topics.publications"));
        }
        if !(1..=1024).contains(&self.topics.partitions) {
            return Err(ConfigError::invalid("topics.partitions", "must be between 1 and 1024"));
        }
        self.event_time.logic(&self.topics.documents)?;
        if let Some(sink) = &self.kafka_sink {
            sink.check(&VIEWS).map_err(|(setting, reason)| ConfigError::invalid(format!("kafka_sink.{setting}"), reason))?;
        }
        self.autoscaler.policy(1)?;
        self.matching.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_configurations_are_valid() {
        for (text, origin) in [
            (include_str!("../../config/local.toml"), "config/local.toml"),
            (include_str!("../../config/docker.toml"), "config/docker.toml"),
        ] {
            let config: CiteflowConfig = parse_toml(text, origin).unwrap();
            config.validate().unwrap();
        }
    }

    #[test]
    fn the_learned_scorer_is_the_default_and_the_rules_remain_a_choice() {
        let mut matcher = MatcherConfig::default();
        assert!(matches!(matcher.scorer("m").expect("run scripts/services.sh install"), Scorer::Model { model: ModelSource::Bundled, .. }));
        assert_eq!(matcher.min_score(), 0.5);
        matcher.model = RULES.into();
        assert_eq!(matcher.scorer("m").unwrap(), Scorer::Rules);
        assert_eq!(matcher.min_score(), 0.8);
        matcher.min_score = Some(0.9);
        assert_eq!(matcher.logic("m").unwrap().decision.min_score, 900_000);
        let text = "[[matching.matchers]]\nmatcher = \"a\"\nmodel = \"rules\"\nmargin = 0.1\n";
        let rules = CiteflowConfig::parse(text, "text").unwrap().decision_rules();
        assert_eq!(rules, vec![("a".to_string(), DecisionRule { min_score: 800_000, margin: 100_000 })]);
    }

    #[test]
    fn a_missing_model_names_its_setting() {
        let mut config = CiteflowConfig::default();
        config.matching.matchers[0].model = "no/such/model.onnx".into();
        assert!(config.validate().unwrap_err().to_string().contains("matching.matchers[0].model"));
    }

    #[test]
    fn event_time_settings_parse_and_name_themselves() {
        let mut config = CiteflowConfig::default();
        let logic = config.event_time.logic("docs").unwrap();
        assert_eq!(logic.windows, Windows::CalendarMonths { months: 1 });
        assert_eq!(logic.watermarks.out_of_orderness, 7 * 86_400_000);
        config.event_time.period = "2 weeks".into();
        assert_eq!(config.event_time.logic("docs").unwrap().windows, Windows::Tumbling { size: 14 * 86_400_000, offset: 0 });
        config.event_time.late_policy = "drop".into();
        assert!(config.validate().unwrap_err().to_string().contains("event_time.late_policy"));
        config.event_time.late_policy = "dead_letter".into();
        config.event_time.period = "0 months".into();
        assert!(config.validate().unwrap_err().to_string().contains("event_time.period"));
    }

    #[test]
    fn an_archive_source_names_its_directory() {
        let config = CiteflowConfig::parse("[source]\nkind = \"archive\"\ndir = \".\"\n", "text").unwrap();
        assert_eq!(config.source, SourceConfig::Archive { dir: ".".into() });
        let missing = CiteflowConfig::parse("[source]\nkind = \"archive\"\ndir = \"no/such/dir\"\n", "text").unwrap_err();
        assert!(missing.to_string().contains("source.dir"), "{missing}");
        assert!(CiteflowConfig::parse("[source]\nkind = \"archive\"\n", "text").is_err(), "an archive needs its directory");
        assert_eq!(CiteflowConfig::parse("", "text").unwrap().source, SourceConfig::Kafka);
    }

    #[test]
    fn a_bad_topic_names_its_setting() {
        let mut config = CiteflowConfig::default();
        config.topics.documents = "has space".into();
        assert!(config.validate().unwrap_err().to_string().contains("topics.documents"));
    }
}
