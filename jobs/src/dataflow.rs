//! The citation job as a dataflow: from the source's events to the sink's collections.
//! Kafka is not needed here, so tests and evaluation can drive the same code directly.

use std::path::PathBuf;
use std::sync::Arc;

use citeflow_connectors::kafka::source::{KafkaMessage, SourceEvent};
use citeflow_engine::metrics::metrics;
use citeflow_engine::replay::ReplayEnd;
use citeflow_engine::rows::{CopyLine, Row};
use citeflow_engine::sink::{DeadLetter, HydrationTarget, SourcePosition};
use citeflow_engine::time::{Epoch, EpochTicker};
use citeflow_operators::unzip::flat_unzip;
use citeflow_operators::upsert::{upsert, upsert_keeping, upsert_replaying, Upsert};
use citeflow_operators::validate::validate;
use citeflow_operators::watermark::Observation;
use differential_dataflow::VecCollection;
use timely::dataflow::operators::core::OkErr;
use timely::dataflow::operators::vec::{Broadcast, Map};
use timely::dataflow::Stream;

use crate::config::CiteflowConfig;
use crate::domain::{PolicyDocument, Publication};
use crate::envelope::{decode, Event, TopicRoles};
use crate::matching::journals::JournalTable;
use crate::matching::{candidate_features, decide, score_pairs, DecisionRule, ModelSource, Scorer};
use crate::periods::{citations_per_period, Dated, DocumentArrival, PeriodLogic};
use crate::publications::{take_apart, EntryMaker, PublicationEntry};
use crate::views::{document_row, view_rows, PERIOD_VIEW_IDS};
use citeflow_connectors::files::watch_file;
use citeflow_operators::inference::InferenceError;

/// What the sink needs from the job.
pub struct JobOutputs<'scope> {
    /// Rows of every view.
    pub views: VecCollection<'scope, Epoch, Row>,
    /// Source positions (one per partition).
    pub positions: VecCollection<'scope, Epoch, SourcePosition>,
    /// Dead letters.
    pub dead_letters: VecCollection<'scope, Epoch, DeadLetter>,
}

/// The job's settings inside the dataflow.
#[derive(Clone)]
pub struct JobLogic {
    /// Which topic carries what.
    pub roles: TopicRoles,
    /// Journal names.
    pub journals: Arc<JournalTable>,
    /// The matchers (one, or two side by side); the first is primary.
    pub matchers: Vec<MatcherLogic>,
    /// Watch model files and the configuration file for replacements, polling every epoch of
    /// this ticker (which closes the watchers' epochs).
    pub watch_files: Option<EpochTicker>,
    /// The configuration file: a change to a matcher's `min_score` or `margin` re-decides its
    /// citations inside the running job.
    pub config_file: Option<PathBuf>,
    /// Event time: watermarks and the period view.
    pub periods: PeriodLogic,
    /// After a restart, the offsets committed by the previous run: the records up to them are a
    /// replay, whose intermediate versions the job's upserts keep to themselves
    /// ([`upsert_replaying`]). Empty on a first start.
    pub replay_to: HydrationTarget,
}

/// One matcher inside the dataflow.
#[derive(Clone, Debug)]
pub struct MatcherLogic {
    /// The name its citations carry.
    pub name: String,
    /// When its best candidate becomes a citation.
    pub decision: DecisionRule,
    /// How it scores candidates.
    pub scorer: Scorer,
}

/// Upsert order of a message (see [`PartitionClocks`]).
pub(crate) type MessageOrder = (i64, i32, i64);

/// The order in which messages replace each other: their partition's clock, then partition,
/// then offset. A partition's clock at a message is the greatest timestamp among the messages
/// read from the partition up to and including it (a message without a timestamp leaves it
/// where it was; before any, it is -1).
///
/// Within a partition this is the offset order, whatever the timestamps say: producers stamp
/// their own clocks, so two producers writing one key can append a message with an earlier
/// timestamp after one with a later one. Ordering by the raw timestamp would let the older
/// message lose to the newer one when both fall in one epoch and win when an epoch closes
/// between them, so the outcome would depend on where epochs fall, and a run would differ from a
/// replay of the same log. The clock never goes back within a partition, so offsets decide.
///
/// Offsets of different partitions say nothing about which came first, so they are never
/// compared alone: a key whose messages move to another partition (partitions added, a producer
/// with another partitioner) follows its latest message by its partition's clock.
///
/// The clocks live on the worker that reads each partition, which reads it in offset order from
/// its start (a restart replays it), so they are the same in every run over the same log.
#[derive(Default)]
pub(crate) struct PartitionClocks(Vec<(String, i32, i64)>);

impl PartitionClocks {
    /// The order of `message`, the next message read from its partition.
    pub(crate) fn order(&mut self, message: &KafkaMessage) -> MessageOrder {
        let found = self.0.iter().position(|(topic, partition, _)| *partition == message.partition && *topic == message.topic);
        let index = found.unwrap_or_else(|| {
            self.0.push((message.topic.clone(), message.partition, -1));
            self.0.len() - 1
        });
        let clock = &mut self.0[index].2;
        *clock = (*clock).max(message.timestamp.unwrap_or(-1));
        (*clock, message.partition, message.offset)
    }
}

/// The decision rules a changed configuration file sets; a file that does not load is
/// reported and changes nothing.
fn decision_rules(text: &[u8], origin: &str) -> Vec<(String, DecisionRule)> {
    match std::str::from_utf8(text)
        .map_err(|e| e.to_string())
        .and_then(|text| CiteflowConfig::parse(text, origin).map_err(|e| e.to_string()))
    {
        Ok(config) => {
            let rules = config.decision_rules();
            tracing::info!(
                ?rules,
                "configuration changed; re-deciding citations with these rules (other settings apply at the next start)"
            );
            metrics().reloads.with_label_values(&["rules", "loaded"]).inc();
            rules
        }
        Err(error) => {
            tracing::error!(%error, "the changed configuration is unusable; keeping the current decision rules");
            metrics().reloads.with_label_values(&["rules", "refused"]).inc();
            Vec::new()
        }
    }
}

/// Builds the job from the source's events; fails only if a scorer's model cannot load.
pub fn citation_job<'scope>(
    events: Stream<'scope, Epoch, Vec<SourceEvent>>,
    logic: JobLogic,
) -> Result<JobOutputs<'scope>, InferenceError> {
    let scope = events.scope();
    let documents_topic = logic.roles.documents.clone();
    let (messages, positions): (Stream<'scope, Epoch, Vec<KafkaMessage>>, Stream<'scope, Epoch, Vec<SourcePosition>>) =
        events.ok_err(|event| match event {
            SourceEvent::Message(message) => Ok(message),
            SourceEvent::Position(position) => Err(position),
        });
    let replay = (!logic.replay_to.is_empty()).then(|| {
        ReplayEnd::new(
            positions.clone().map(|position| ((position.topic, position.partition), position.next_offset)),
            logic.replay_to.clone(),
        )
    });
    let document_positions = positions.clone().flat_map(move |position| {
        (position.topic == documents_topic)
            .then_some(Observation::Position { partition: position.partition, next_offset: position.next_offset })
    });
    let positions = upsert(positions.map(|position| Upsert {
        key: (position.topic.clone(), position.partition),
        order: position.next_offset,
        value: Some(position),
    }))
    .map(|(_, position)| position);

    let roles = logic.roles.clone();
    let mut clocks = PartitionClocks::default();
    let (events, dead_letters) = validate(messages, move |message| {
        let order = clocks.order(&message);
        decode(message, &roles).map(|(event, message)| (event, message, order))
    });
    type PublicationUpsert = Upsert<String, Publication, MessageOrder>;
    type DocumentUpsert = Upsert<String, PolicyDocument, MessageOrder>;
    type DocumentMessage = (DocumentUpsert, KafkaMessage);
    let (publications, documents): (Stream<'scope, Epoch, Vec<PublicationUpsert>>, Stream<'scope, Epoch, Vec<DocumentMessage>>) = events
        .ok_err(|(event, message, order): (Event, KafkaMessage, MessageOrder)| match event {
            Event::Publication(key, value) => Ok(Upsert { key, order, value }),
            Event::Document(key, value) => Err((Upsert { key, order, value }, message)),
        });
    let mut maker = EntryMaker::new(logic.journals.clone());
    let publications = publications.map(move |Upsert { key, order, value }| Upsert { key, order, value: value.map(|p| maker.entry(&p)) });
    let publications = upsert_keeping(publications, replay.as_ref(), PublicationEntry::kept);
    let arrivals = documents.clone().map(|(upsert, message)| DocumentArrival {
        dated: upsert.value.as_ref().map(Dated::of),
        id: upsert.key,
        order: upsert.order,
        message,
    });
    let documents = upsert_replaying(documents.map(|(upsert, _)| upsert), replay.as_ref());

    // A document's row and its references, each moved to its readers rather than the whole
    // document cloned for each.
    let mut scratch = CopyLine::default();
    let (document_rows, references) = flat_unzip(documents, "Policy document rows", move |(id, document): (String, PolicyDocument)| {
        let row = document_row(&document, &mut scratch);
        (Some(row), document.references.into_iter().enumerate().map(move |(index, text)| ((id.clone(), index as u32), text)))
    });
    let (publication_rows, indexed) = take_apart(publications);
    let pairs = candidate_features(indexed, references.clone(), logic.journals);
    let new_rules = match (&logic.config_file, &logic.watch_files) {
        (Some(path), Some(ticker)) => {
            let origin = path.display().to_string();
            Some(watch_file(scope, path.clone(), ticker.clone()).flat_map(move |text| decision_rules(&text, &origin)).broadcast())
        }
        _ => None,
    };
    let mut decisions = Vec::new();
    for matcher in &logic.matchers {
        let replacements = match (&matcher.scorer, &logic.watch_files) {
            (Scorer::Model { model: ModelSource::File(path), .. }, Some(ticker)) => Some(watch_file(scope, path.clone(), ticker.clone())),
            _ => None,
        };
        let scored = score_pairs(pairs.clone(), &matcher.scorer, replacements)?;
        let name = matcher.name.clone();
        let rule_updates = new_rules.clone().map(|rules| rules.flat_map(move |(matcher, rule)| (matcher == name).then_some(rule)));
        decisions.push((matcher.name.clone(), decide(scored, matcher.decision, rule_updates)));
    }
    let cited = decisions[0].1.clone().map(|((document, _), candidate)| (document, candidate.publication));
    let periods = citations_per_period(arrivals, document_positions, cited, logic.periods, replay.as_ref(), PERIOD_VIEW_IDS);
    let views = view_rows(publication_rows, document_rows, references, decisions).concat(periods.rows);
    Ok(JobOutputs { views, positions, dead_letters: dead_letters.concat(periods.dead_letters) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(partition: i32, offset: i64, timestamp: Option<i64>) -> KafkaMessage {
        KafkaMessage { topic: "t".into(), partition, offset, key: None, payload: None, timestamp }
    }

    /// The orders of `messages`, read in this sequence.
    fn orders(messages: &[KafkaMessage]) -> Vec<MessageOrder> {
        let mut clocks = PartitionClocks::default();
        messages.iter().map(|m| clocks.order(m)).collect()
    }

    #[test]
    fn a_later_message_wins_across_partitions_whatever_its_offset() {
        let order = orders(&[message(0, 1_000, Some(5_000)), message(1, 3, Some(6_000)), message(0, 1_001, Some(5_000))]);
        assert!(order[1] > order[0]);
        assert!(order[2] > order[0], "within a partition, offsets order one timestamp");
        assert!(orders(&[message(0, 9_999, None)])[0] < order[0], "no timestamp: the oldest");
    }

    #[test]
    fn within_a_partition_offsets_win_over_timestamps() {
        let order = orders(&[message(0, 1, Some(9_000)), message(0, 2, Some(4_000)), message(0, 3, None), message(1, 1, Some(5_000))]);
        assert!(order[0] < order[1] && order[1] < order[2], "{order:?}");
        assert!(order[3] < order[2], "another partition's older message stays older than the clock: {order:?}");
    }

    proptest::proptest! {
        /// An upsert keeps, per epoch and key, the greatest order, and applies epochs in turn:
        /// wherever epochs close in one partition's messages, the last by offset wins.
        #[test]
        fn where_epochs_close_does_not_change_which_message_wins(
            messages in proptest::collection::vec((0u8..3, proptest::option::of(0i64..20)), 1..40),
            closes in proptest::collection::vec(proptest::bool::ANY, 40),
        ) {
            let read: Vec<KafkaMessage> =
                messages.iter().enumerate().map(|(offset, (_, timestamp))| message(0, offset as i64, *timestamp)).collect();
            let order = orders(&read);
            let mut state = std::collections::BTreeMap::new();
            let mut epoch: std::collections::BTreeMap<u8, (MessageOrder, usize)> = std::collections::BTreeMap::new();
            for (index, (key, _)) in messages.iter().enumerate() {
                if epoch.get(key).is_none_or(|(existing, _)| *existing < order[index]) {
                    epoch.insert(*key, (order[index], index));
                }
                if closes[index] || index + 1 == messages.len() {
                    state.extend(std::mem::take(&mut epoch).into_iter().map(|(key, (_, index))| (key, index)));
                }
            }
            let mut last = std::collections::BTreeMap::new();
            for (index, (key, _)) in messages.iter().enumerate() {
                last.insert(*key, index);
            }
            proptest::prop_assert_eq!(state, last);
        }
    }
}
