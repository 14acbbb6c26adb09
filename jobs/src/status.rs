//! `citeflow status`: what the views hold, read from PostgreSQL.

use std::fmt::Write;

use anyhow::Context;
use citeflow_connectors::postgres::PostgresConfig;
use tokio_postgres::Client;

/// Connects with the job's settings.
pub async fn connect(config: &PostgresConfig) -> anyhow::Result<Client> {
    config.connection()?.connect().await.context("connecting to postgres")
}

/// A readable report: job generation and frontier, progress, row counts, dead letters and
/// the most-cited publications.
pub async fn report(client: &Client) -> anyhow::Result<String> {
    let mut out = String::new();
    let job = client
        .query_one("SELECT generation, frontier, committed_at::text FROM citeflow_job WHERE id = 1", &[])
        .await
        .context("reading citeflow_job (has the job run yet?)")?;
    writeln!(
        out,
        "job: generation {}, frontier {}, last commit {}",
        job.get::<_, i64>(0),
        job.get::<_, Option<i64>>(1).map_or("-".into(), |f| f.to_string()),
        job.get::<_, Option<String>>(2).unwrap_or_else(|| "never".into())
    )?;
    writeln!(out, "\nprogress (next offset per partition):")?;
    for row in client.query("SELECT topic, partition, next_offset FROM citeflow_progress ORDER BY 1, 2", &[]).await? {
        writeln!(out, "  {:<24} {:>3} {:>10}", row.get::<_, String>(0), row.get::<_, i32>(1), row.get::<_, i64>(2))?;
    }
    writeln!(out, "\nrows per view:")?;
    for table in
        ["publications", "policy_documents", "citations", "publication_citation_counts", "citations_per_period", "citeflow_dead_letters"]
    {
        let count: i64 = client.query_one(&format!("SELECT count(*) FROM {table}"), &[]).await?.get(0);
        writeln!(out, "  {table:<30} {count:>8}")?;
    }
    writeln!(out, "\ncitations by method:")?;
    for row in client.query("SELECT matcher, method, count(*) FROM citations GROUP BY 1, 2 ORDER BY 1, 3 DESC", &[]).await? {
        writeln!(out, "  {:<12} {:<14} {:>8}", row.get::<_, String>(0), row.get::<_, String>(1), row.get::<_, i64>(2))?;
    }
    writeln!(out, "\ndead letters by reason:")?;
    for row in client.query("SELECT reason, count(*) FROM citeflow_dead_letters GROUP BY 1 ORDER BY 2 DESC, 1", &[]).await? {
        writeln!(out, "  {:<28} {:>5}", row.get::<_, String>(0), row.get::<_, i64>(1))?;
    }
    writeln!(out, "\nevent-time watermarks:")?;
    for row in
        client.query("SELECT source, coalesce(watermark::text, '-') FROM citeflow_watermarks ORDER BY source <> 'global', 1", &[]).await?
    {
        writeln!(out, "  {:<28} {}", row.get::<_, String>(0), row.get::<_, String>(1))?;
    }
    writeln!(out, "\nlatest periods (organisation, start, documents, citing, citations, state, revision):")?;
    let periods = client
        .query(
            "SELECT organisation, period_start::date::text, documents, citing_documents, citations, closed, revision
             FROM citations_per_period ORDER BY period_start DESC, documents DESC LIMIT 8",
            &[],
        )
        .await?;
    for row in periods {
        let state = if row.get::<_, bool>(5) { "closed" } else { "provisional" };
        writeln!(
            out,
            "  {:<14} {} {:>6} {:>6} {:>6}  {state:<11} {}",
            row.get::<_, String>(0),
            row.get::<_, String>(1),
            row.get::<_, i64>(2),
            row.get::<_, i64>(3),
            row.get::<_, i64>(4),
            row.get::<_, i32>(6)
        )?;
    }
    writeln!(out, "\nmost-cited publications:")?;
    let top = client
        .query(
            "SELECT c.publication_id, c.citations, c.citing_documents, coalesce(p.title, '(no title)')
             FROM publication_citation_counts c JOIN publications p USING (publication_id)
             ORDER BY c.citations DESC, c.publication_id LIMIT 10",
            &[],
        )
        .await?;
    for row in top {
        let title: String = row.get(3);
        let short: String = title.chars().take(70).collect();
        writeln!(
            out,
            "  {:>10}  {:>3} citations in {:>3} documents  {short}",
            row.get::<_, String>(0),
            row.get::<_, i64>(1),
            row.get::<_, i64>(2)
        )?;
    }
    Ok(out)
}
