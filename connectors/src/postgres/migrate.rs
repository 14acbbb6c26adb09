//! Versioned migrations: each component (the engine's own tables, each job's views) owns a
//! numbered list of SQL scripts; each script runs once, in order, in its own transaction,
//! under an advisory lock so that concurrent starts do not race.

use tokio_postgres::Client;

use super::PgError;

/// One schema change.
#[derive(Clone, Copy, Debug)]
pub struct Migration {
    /// Who owns the tables, e.g. `engine` or `citations`.
    pub component: &'static str,
    /// Position in the component's sequence, from 1.
    pub version: i32,
    /// What it does.
    pub description: &'static str,
    /// The SQL to run.
    pub sql: &'static str,
}

/// The engine's own tables: the job's generation and frontier, source progress, the dead
/// letters, and event-time watermarks with their durable log.
pub const ENGINE_MIGRATIONS: &[Migration] = &[
    Migration {
        component: "engine",
        version: 1,
        description: "job generation and frontier, source progress, dead letters",
        sql: r#"
        CREATE TABLE citeflow_job (
            id integer PRIMARY KEY CHECK (id = 1),
            generation bigint NOT NULL,
            frontier bigint,
            started_at timestamptz,
            committed_at timestamptz
        );
        INSERT INTO citeflow_job (id, generation) VALUES (1, 0);
        CREATE TABLE citeflow_progress (
            topic text NOT NULL,
            partition integer NOT NULL,
            next_offset bigint NOT NULL,
            PRIMARY KEY (topic, partition)
        );
        CREATE TABLE citeflow_dead_letters (
            topic text NOT NULL,
            partition integer NOT NULL,
            "offset" bigint NOT NULL,
            reason text NOT NULL,
            detail text NOT NULL,
            message_key bytea,
            payload bytea,
            recorded_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (topic, partition, "offset")
        );
    "#,
    },
    Migration {
        component: "engine",
        version: 2,
        description: "event-time watermarks and their durable log",
        sql: r#"
        CREATE TABLE citeflow_watermark_log (
            watermark_ms bigint NOT NULL,
            topic text NOT NULL,
            partition integer NOT NULL,
            next_offset bigint NOT NULL,
            watermark timestamptz NOT NULL,
            PRIMARY KEY (watermark_ms, topic, partition)
        );
        CREATE TABLE citeflow_watermarks (
            source text PRIMARY KEY,
            watermark timestamptz,
            next_offset bigint
        );
    "#,
    },
    Migration {
        component: "engine",
        version: 3,
        description: "dead letters: original payload size and hash, and a publication outbox",
        sql: r#"
        ALTER TABLE citeflow_dead_letters
            ADD COLUMN payload_size bigint,
            ADD COLUMN payload_sha256 text,
            ADD COLUMN published_at timestamptz;
        UPDATE citeflow_dead_letters SET payload_size = length(payload), published_at = recorded_at;
        CREATE INDEX citeflow_dead_letters_unpublished ON citeflow_dead_letters (recorded_at) WHERE published_at IS NULL;
    "#,
    },
    Migration {
        component: "engine",
        version: 4,
        description: "row digests (every table written through a view schema ends with one); no more shadow tables",
        sql: r#"
        ALTER TABLE citeflow_progress ADD COLUMN row_digest bigint;
        ALTER TABLE citeflow_dead_letters ADD COLUMN row_digest bigint;
        ALTER TABLE citeflow_watermark_log ADD COLUMN row_digest bigint;
        ALTER TABLE citeflow_watermarks ADD COLUMN row_digest bigint;
        DO $$
        DECLARE shadow text;
        BEGIN
            FOR shadow IN SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename LIKE 'citeflow\_shadow\_%' LOOP
                EXECUTE format('DROP TABLE %I', shadow);
            END LOOP;
        END $$;
    "#,
    },
];

const LOCK_ID: i64 = 0x6369_7465_666c_6f77;

/// Applies every migration of `migrations` that the database has not seen; returns how many ran.
pub async fn migrate(client: &mut Client, migrations: &[Migration]) -> Result<usize, PgError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS citeflow_migrations (
                component text NOT NULL,
                version integer NOT NULL,
                description text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (component, version)
            )",
        )
        .await
        .map_err(PgError::db("creating the migrations table"))?;
    let mut applied = 0;
    for migration in migrations {
        let transaction = client.transaction().await.map_err(PgError::db("starting a migration"))?;
        transaction.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_ID]).await.map_err(PgError::db("locking for migrations"))?;
        let done = transaction
            .query_opt(
                "SELECT 1 FROM citeflow_migrations WHERE component = $1 AND version = $2",
                &[&migration.component, &migration.version],
            )
            .await
            .map_err(PgError::db("reading applied migrations"))?
            .is_some();
        if done {
            continue;
        }
        let context = format!("migration {} v{} ({})", migration.component, migration.version, migration.description);
        transaction.batch_execute(migration.sql).await.map_err(PgError::db(context.clone()))?;
        transaction
            .execute(
                "INSERT INTO citeflow_migrations (component, version, description) VALUES ($1, $2, $3)",
                &[&migration.component, &migration.version, &migration.description],
            )
            .await
            .map_err(PgError::db(context.clone()))?;
        transaction.commit().await.map_err(PgError::db(context.clone()))?;
        tracing::info!(migration = %context, "applied");
        applied += 1;
    }
    Ok(applied)
}
