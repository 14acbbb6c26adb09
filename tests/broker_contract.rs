//! What citeflow relies on from the Kafka-protocol broker, pinned down so that a broker
//! upgrade that fixes or breaks it is noticed. Run against tansu 0.6.0 with one record per
//! producer batch (its multi-record batches are mishandled; see the README).

mod support;

use std::time::Duration;

use citeflow_connectors::kafka::admin::{discover_partitions, ensure_topics, retention, watermarks, Retention};
use citeflow_connectors::kafka::producer::{Outgoing, Producer};
use citeflow_connectors::kafka::KafkaConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::{Offset, TopicPartitionList};
use support::{read_topic, test_kafka, Broker};

/// A fresh broker, a client configuration for it, and `topic` created with `partitions`.
fn broker_with_topic(topic: &str, partitions: i32) -> (Broker, KafkaConfig, String) {
    let broker = Broker::start();
    let config = test_kafka(&broker);
    let topic = topic.to_string();
    ensure_topics(&config, std::slice::from_ref(&topic), partitions).unwrap();
    (broker, config, topic)
}

#[test]
fn the_broker_keeps_offsets_keys_tombstones_and_headers() {
    let (broker, config, topic) = broker_with_topic("contract", 1);
    ensure_topics(&config, std::slice::from_ref(&topic), 1).expect("creating an existing topic is not an error");
    assert_eq!(discover_partitions(&config, std::slice::from_ref(&topic)).unwrap(), vec![(topic.clone(), 0)]);
    assert!(discover_partitions(&config, &["missing-topic".to_string()]).is_err());

    let mut producer = Producer::new(&config, None).unwrap();
    for i in 0..25 {
        let key = format!("k{i}");
        let value = format!("v{i}");
        let headers = OwnedHeaders::new().insert(Header { key: "n", value: Some(&i.to_string()) });
        let value = (i % 5 != 4).then_some(value.as_bytes());
        producer.send(Outgoing { topic: &topic, key: Some(key.as_bytes()), value, headers: Some(headers), partition: None }).unwrap();
    }
    producer.flush().unwrap();

    let consumer: BaseConsumer = config.consumer_config().create().unwrap();
    assert_eq!(watermarks(&consumer, &topic, 0, Duration::from_secs(10)).unwrap(), (0, 25), "the high watermark counts every record");

    let messages = read_topic(&broker, &topic);
    let offsets: Vec<i64> = messages.iter().map(|m| m.offset).collect();
    assert_eq!(offsets, (0..25).collect::<Vec<_>>(), "each offset exactly once, in order");
    for (i, message) in messages.iter().enumerate() {
        assert_eq!(message.key.as_deref(), Some(format!("k{i}").as_bytes()));
        assert_eq!(message.value.is_none(), i % 5 == 4, "tombstones stay null, values stay set");
        assert_eq!(message.headers, vec![("n".to_string(), i.to_string())]);
    }

    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(&topic, 0, Offset::Offset(17)).unwrap();
    consumer.assign(&assignment).unwrap();
    let first = loop {
        if let Some(result) = consumer.poll(Duration::from_secs(1)) {
            break result.unwrap().offset();
        }
    };
    assert_eq!(first, 17, "a fetch from an offset starts exactly there");
}

/// Producers compress with any of Kafka's four codecs; the job reads them all (librdkafka is
/// built with zlib and zstd, and has lz4 and snappy itself).
#[test]
fn messages_compressed_with_every_codec_are_read() {
    let (broker, _, topic) = broker_with_topic("compressed", 1);
    let codecs = ["gzip", "snappy", "lz4", "zstd"];
    for codec in codecs {
        let mut config = test_kafka(&broker);
        config.producer.insert("compression.type".into(), codec.into());
        let mut producer = Producer::new(&config, None).unwrap();
        let value = format!("{codec} ").repeat(50);
        producer
            .send(Outgoing { topic: &topic, key: Some(codec.as_bytes()), value: Some(value.as_bytes()), headers: None, partition: None })
            .unwrap();
        producer.flush().unwrap();
    }
    let messages = read_topic(&broker, &topic);
    let read: Vec<(Vec<u8>, Vec<u8>)> = messages.into_iter().map(|m| (m.key.unwrap(), m.value.unwrap())).collect();
    let expected: Vec<(Vec<u8>, Vec<u8>)> =
        codecs.iter().map(|codec| (codec.as_bytes().to_vec(), format!("{codec} ").repeat(50).into_bytes())).collect();
    assert_eq!(read, expected, "every codec decompresses to what was sent");
}

/// What the job checks at start: the retention settings of its topics (DescribeConfigs), and
/// that the topics it creates are compacted (CreateTopics with a setting).
#[test]
fn topics_are_created_compacted_and_their_retention_is_described() {
    let broker = Broker::start();
    let kafka = test_kafka(&broker);
    let topic = "contract.compacted".to_string();
    ensure_topics(&kafka, std::slice::from_ref(&topic), 2).unwrap();
    assert_eq!(retention(&kafka, std::slice::from_ref(&topic)).unwrap(), vec![(topic, Retention::Kept)]);
}

/// Adding partitions to a topic (CreatePartitions) is what makes the job's partition discovery
/// (`kafka.partition_discovery_ms`) matter. tansu 0.6.0 does not implement it, so discovery is
/// tested only below the broker (`connectors/src/kafka/discovery.rs`), and end to end it is
/// untested here. When this fails, the broker can grow topics: test discovery through it.
#[test]
fn the_broker_cannot_add_partitions() {
    use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions};
    use rdkafka::client::DefaultClientContext;
    let (_broker, config, topic) = broker_with_topic("growing", 2);
    let admin: AdminClient<DefaultClientContext> = config.admin_config().create().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    let added = runtime.block_on(admin.create_partitions(&[NewPartitions::new(&topic, 4)], &options));
    let grew = matches!(added.as_deref(), Ok([Ok(_)])) && discover_partitions(&config, std::slice::from_ref(&topic)).unwrap().len() == 4;
    assert!(!grew, "the broker now adds partitions: {added:?}");
}

/// tansu 0.6.0 starts transactions but cannot end them: it has no EndTxn (see
/// `connectors/docs/tansu-transactions.md`). A transactional producer initialises, begins and
/// sends; its records are held back from `read_committed` readers while the transaction is
/// open; the commit fails. This fails loudly once the broker commits transactions, which a
/// transactional Kafka sink's tests need.
#[test]
fn the_broker_opens_transactions_but_cannot_commit_them() {
    use rdkafka::producer::DefaultProducerContext;
    use rdkafka::producer::{BaseRecord, Producer as _, ThreadedProducer};
    let (_broker, config, topic) = broker_with_topic("transactional", 1);
    let producer: ThreadedProducer<DefaultProducerContext> = config.producer_config().set("transactional.id", "contract").create().unwrap();
    let timeout = Duration::from_secs(10);
    producer.init_transactions(timeout).expect("InitProducerId with a transactional id");
    producer.begin_transaction().unwrap();
    producer.send(BaseRecord::to(&topic).key("k").payload("v")).map_err(|(error, _)| error).unwrap();
    producer.flush(timeout).expect("the transaction's record is written");

    let reader = |isolation: &str| -> BaseConsumer { config.consumer_config().set("isolation.level", isolation).create().unwrap() };
    let uncommitted = watermarks(&reader("read_uncommitted"), &topic, 0, timeout).unwrap();
    assert_eq!(uncommitted, (0, 1), "the open transaction's record is in the log");
    let consumer = reader("read_committed");
    let committed = watermarks(&consumer, &topic, 0, timeout).unwrap();
    assert_eq!(committed, (0, 0), "read_committed offsets end at the open transaction (its last stable offset)");
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(&topic, 0, Offset::Beginning).unwrap();
    consumer.assign(&assignment).unwrap();
    let seen = (0..5).filter_map(|_| consumer.poll(Duration::from_secs(1))).filter(|result| result.is_ok()).count();
    assert_eq!(seen, 0, "a read_committed reader does not see an open transaction's record");

    let commit = producer.commit_transaction(timeout);
    assert!(commit.is_err(), "the broker now commits transactions: {commit:?}");
}

/// The Kafka sink's idempotent producer: the broker accepts producer ids and sequence numbers,
/// and a partition holds what was sent, once, in order.
#[test]
fn an_idempotent_producer_writes_each_message_once_in_order() {
    let (broker, mut config, topic) = broker_with_topic("idempotent", 1);
    config.producer.insert("enable.idempotence".into(), "true".into());
    let mut producer = Producer::new(&config, None).unwrap();
    for i in 0..50 {
        let value = i.to_string();
        let message = Outgoing { topic: &topic, key: Some(b"k"), value: Some(value.as_bytes()), headers: None, partition: None };
        producer.send(message).unwrap();
    }
    producer.flush().expect("every message delivered");
    let values: Vec<String> = read_topic(&broker, &topic).into_iter().map(|m| String::from_utf8(m.value.unwrap()).unwrap()).collect();
    assert_eq!(values, (0..50).map(|i| i.to_string()).collect::<Vec<_>>());
}

/// Zombie fencing by transactional id, which a transactional Kafka sink relies on: a second
/// producer initialising the same `transactional.id` aborts the first one's open transaction
/// and the first one can no longer write.
#[test]
fn a_second_producer_with_the_transactional_id_fences_the_first() {
    let (broker, mut config, topic) = broker_with_topic("fencing", 1);
    config.producer.insert("transactional.id".into(), "fencing".into());
    let mut zombie = Producer::new(&config, None).unwrap();
    zombie.init_transactions().unwrap();
    zombie.begin_transaction().unwrap();
    let message =
        |value: &'static str| Outgoing { topic: &topic, key: Some(b"k"), value: Some(value.as_bytes()), headers: None, partition: None };
    zombie.send(message("before")).unwrap();
    zombie.flush().expect("the zombie's first record is written");

    let successor = Producer::new(&config, None).unwrap();
    successor.init_transactions().expect("the successor takes the transactional id");
    zombie.send(message("after")).unwrap();
    assert!(zombie.flush().is_err(), "the zombie's next record is refused");
    let values: Vec<String> =
        read_topic(&broker, &topic).into_iter().filter_map(|m| m.value.map(|v| String::from_utf8(v).unwrap())).collect();
    // tansu still hands the aborted record to read_committed readers (it sends no list of
    // aborted transactions; connectors/docs/tansu-transactions.md); Apache Kafka hides it.
    assert_eq!(values, vec!["before".to_string()], "nothing the zombie sent after the successor arrived is in the log");
}
