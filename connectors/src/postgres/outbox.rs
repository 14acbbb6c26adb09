//! The dead-letter outbox: dead letters reach the dead-letter topic from the table, never on
//! the commit path.
//!
//! The committer records each dead letter in `citeflow_dead_letters` inside the transaction
//! that commits the positions past it (exactly once in the table), with `published_at` NULL.
//! This thread, with its own connection, publishes the unpublished rows in order of recording
//! and then marks them published. So the topic is at-least-once (a crash between the publish
//! and the mark publishes again; the key `topic/partition/offset` lets consumers drop repeats),
//! and a broker that refuses or cannot take dead letters holds back nothing but the outbox:
//! failures are counted (`citeflow_dead_letter_publish_failures_total`), the backlog is a
//! metric (`citeflow_dead_letter_backlog`), and the outbox retries after a backoff that doubles
//! from one second up to a minute. When the job stops, the outbox makes one last attempt.

use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use citeflow_engine::metrics::metrics;
use citeflow_engine::sink::DeadLetter;
use tokio::runtime::Runtime;
use tokio_postgres::Client;

use super::{Connection, PgError};
use crate::kafka::dead_letters::{DeadLetterPublisher, RecordedLetter};

/// Dead letters published per round trip.
const BATCH: i64 = 500;
/// How often the outbox looks at the table when nobody wakes it.
const IDLE_POLL: Duration = Duration::from_secs(5);
/// The longest wait between attempts after failures.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// What the outbox is told.
pub(crate) enum Wake {
    /// New dead letters were committed.
    Letters,
    /// The job is stopping: publish what is left once, then stop.
    Finish,
}

/// Why a round of publishing failed.
#[derive(Debug, thiserror::Error)]
enum OutboxError {
    #[error(transparent)]
    Database(#[from] PgError),
    #[error(transparent)]
    Publish(#[from] crate::kafka::KafkaError),
}

/// The running outbox thread.
pub(crate) struct Outbox {
    /// Wakes or stops the thread.
    pub(crate) wake: Sender<Wake>,
    /// The thread.
    pub(crate) thread: JoinHandle<()>,
}

/// Starts the outbox thread.
pub(crate) fn start_outbox(connection: Connection, publisher: DeadLetterPublisher) -> std::io::Result<Outbox> {
    let (wake, receiver) = std::sync::mpsc::channel();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let thread =
        std::thread::Builder::new().name("citeflow-outbox".into()).spawn(move || run(&runtime, &connection, publisher, &receiver))?;
    Ok(Outbox { wake, thread })
}

fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.saturating_sub(1).min(6)).min(MAX_BACKOFF)
}

fn run(runtime: &Runtime, connection: &Connection, mut publisher: DeadLetterPublisher, receiver: &Receiver<Wake>) {
    let mut client: Option<Client> = None;
    let mut failures = 0;
    let mut retry_at: Option<Instant> = None;
    loop {
        let timeout = retry_at.map_or(IDLE_POLL, |at| at.saturating_duration_since(Instant::now()));
        let finishing = match receiver.recv_timeout(timeout) {
            Ok(Wake::Letters) if retry_at.is_some_and(|at| Instant::now() < at) => continue,
            Ok(Wake::Letters) | Err(RecvTimeoutError::Timeout) => false,
            Ok(Wake::Finish) | Err(RecvTimeoutError::Disconnected) => true,
        };
        match runtime.block_on(publish_pending(&mut client, connection, &mut publisher)) {
            Ok(()) => {
                failures = 0;
                retry_at = None;
            }
            Err(error) => {
                failures += 1;
                let wait = backoff(failures);
                metrics().dead_letter_publish_failures.with_label_values(&[] as &[&str]).inc();
                tracing::warn!(%error, retry_in = ?wait, "publishing dead letters failed; commits go on");
                retry_at = Some(Instant::now() + wait);
                if client.as_ref().is_some_and(Client::is_closed) {
                    client = None;
                }
            }
        }
        if finishing {
            return;
        }
    }
}

/// Publishes every unpublished dead letter, oldest first, marking each batch once delivered.
async fn publish_pending(
    client: &mut Option<Client>,
    connection: &Connection,
    publisher: &mut DeadLetterPublisher,
) -> Result<(), OutboxError> {
    let client = match client {
        Some(client) => client,
        None => client.insert(connection.connect().await?),
    };
    loop {
        let backlog: i64 = client
            .query_one("SELECT count(*) FROM citeflow_dead_letters WHERE published_at IS NULL", &[])
            .await
            .map_err(PgError::db("counting unpublished dead letters"))?
            .get(0);
        metrics().dead_letter_backlog.set(backlog);
        if backlog == 0 {
            return Ok(());
        }
        let rows = client
            .query(
                "SELECT topic, partition, \"offset\", reason, detail, message_key, payload, payload_size, payload_sha256
                 FROM citeflow_dead_letters WHERE published_at IS NULL ORDER BY recorded_at, topic, partition, \"offset\" LIMIT $1",
                &[&BATCH],
            )
            .await
            .map_err(PgError::db("reading unpublished dead letters"))?;
        let letters: Vec<RecordedLetter> = rows
            .iter()
            .map(|row| RecordedLetter {
                letter: DeadLetter {
                    topic: row.get(0),
                    partition: row.get(1),
                    offset: row.get(2),
                    reason: row.get(3),
                    detail: row.get(4),
                    key: row.get(5),
                    payload: row.get(6),
                },
                payload_size: row.get(7),
                payload_sha256: row.get(8),
            })
            .collect();
        publisher.publish(&letters)?;
        let topics: Vec<&str> = letters.iter().map(|l| l.letter.topic.as_str()).collect();
        let partitions: Vec<i32> = letters.iter().map(|l| l.letter.partition).collect();
        let offsets: Vec<i64> = letters.iter().map(|l| l.letter.offset).collect();
        client
            .execute(
                "UPDATE citeflow_dead_letters d SET published_at = now()
                 FROM unnest($1::text[], $2::int[], $3::bigint[]) AS p(topic, partition, \"offset\")
                 WHERE d.topic = p.topic AND d.partition = p.partition AND d.\"offset\" = p.\"offset\"",
                &[&topics, &partitions, &offsets],
            )
            .await
            .map_err(PgError::db("marking dead letters published"))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_a_second_to_a_minute() {
        let waits: Vec<u64> = (1..=9).map(|failures| backoff(failures).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }
}
