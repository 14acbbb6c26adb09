//! A producer that knows whether its messages were delivered, with an optional rate limit.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError as ClientError, RDKafkaErrorCode};
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer as _, ProducerContext};
use rdkafka::ClientContext;

use super::{KafkaConfig, KafkaError};

/// How long a transaction's initialisation or commit may take.
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(60);

/// Counts failed deliveries.
#[derive(Default)]
pub struct DeliveryTracker {
    failed: Arc<AtomicU64>,
}

impl ClientContext for DeliveryTracker {}

impl ProducerContext for DeliveryTracker {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _opaque: ()) {
        if let Err((error, _)) = result {
            tracing::warn!(%error, "message not delivered");
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One message to produce; `value: None` is a tombstone.
pub struct Outgoing<'a> {
    /// Destination topic.
    pub topic: &'a str,
    /// Message key.
    pub key: Option<&'a [u8]>,
    /// Message value, or `None` for a tombstone.
    pub value: Option<&'a [u8]>,
    /// Headers.
    pub headers: Option<OwnedHeaders>,
    /// The partition to write to; `None` lets the partitioner choose by key.
    pub partition: Option<i32>,
}

/// Produces messages, optionally at most `rate` per second, and reports failed deliveries
/// at [`Producer::flush`].
pub struct Producer {
    inner: BaseProducer<DeliveryTracker>,
    failed: Arc<AtomicU64>,
    rate: Option<f64>,
    started: Instant,
    sent: u64,
}

impl Producer {
    /// A producer with the job's producer settings; `rate` limits messages per second.
    pub fn new(config: &KafkaConfig, rate: Option<f64>) -> Result<Self, KafkaError> {
        let tracker = DeliveryTracker::default();
        let failed = tracker.failed.clone();
        let inner = config.producer_config().create_with_context(tracker).map_err(KafkaError::client("creating producer"))?;
        Ok(Producer { inner, failed, rate, started: Instant::now(), sent: 0 })
    }

    /// Queues one message, waiting while the local queue is full or the rate is exceeded.
    pub fn send(&mut self, message: Outgoing<'_>) -> Result<(), KafkaError> {
        if let Some(rate) = self.rate {
            let due = Duration::from_secs_f64(self.sent as f64 / rate);
            if let Some(wait) = due.checked_sub(self.started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(message.topic);
        if let Some(key) = message.key {
            record = record.key(key);
        }
        if let Some(value) = message.value {
            record = record.payload(value);
        }
        if let Some(partition) = message.partition {
            record = record.partition(partition);
        }
        if let Some(headers) = message.headers {
            record = record.headers(headers);
        }
        loop {
            match self.inner.send(record) {
                Ok(()) => break,
                Err((ClientError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    record = returned;
                    self.inner.poll(Duration::from_millis(50));
                }
                Err((error, _)) => return Err(KafkaError::Client { context: "producing".into(), source: error }),
            }
        }
        self.sent += 1;
        self.inner.poll(Duration::ZERO);
        Ok(())
    }

    /// Registers the producer's `transactional.id` with the brokers, fencing any earlier
    /// producer with that id and aborting its open transaction.
    pub fn init_transactions(&self) -> Result<(), KafkaError> {
        self.inner.init_transactions(TRANSACTION_TIMEOUT).map_err(KafkaError::client("initialising transactions"))
    }

    /// Begins a transaction: what is sent until [`Producer::commit_transaction`] becomes
    /// visible to `read_committed` readers together, or not at all.
    pub fn begin_transaction(&self) -> Result<(), KafkaError> {
        self.inner.begin_transaction().map_err(KafkaError::client("beginning a transaction"))
    }

    /// Delivers what the transaction sent and commits it.
    pub fn commit_transaction(&mut self) -> Result<(), KafkaError> {
        self.inner.commit_transaction(TRANSACTION_TIMEOUT).map_err(KafkaError::client("committing a transaction"))?;
        match self.failed.swap(0, Ordering::Relaxed) {
            0 => Ok(()),
            failed => Err(KafkaError::Undelivered(failed)),
        }
    }

    /// Waits until every queued message is delivered; fails if any could not be.
    pub fn flush(&mut self) -> Result<(), KafkaError> {
        self.inner.flush(Duration::from_secs(60)).map_err(KafkaError::client("flushing producer"))?;
        match self.failed.swap(0, Ordering::Relaxed) {
            0 => Ok(()),
            failed => Err(KafkaError::Undelivered(failed)),
        }
    }
}
