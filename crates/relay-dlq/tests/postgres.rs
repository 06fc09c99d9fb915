//! PostgreSQL specifics: deadlines against a dead server, configuration
//! checks, column types and repeated migrations.

mod common;

use std::time::{Duration, Instant};

use common::*;
use relay_dlq::{DlqError, DlqQuery, DlqStore, FailureReason, PostgresConfig, PostgresDlq};

/// Nothing listens on port 1 of the loopback address.
const DEAD_URL: &str = "postgres://postgres@127.0.0.1:1/test";

#[tokio::test]
async fn connect_to_a_dead_server_fails_fast() {
    let started = Instant::now();
    let result = PostgresDlq::connect(DEAD_URL, 2).await;
    match result {
        Err(e) => assert!(e.is_unavailable(), "expected Unavailable, got {e:?}"),
        Ok(_) => panic!("connected to a dead server"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn lazy_store_reports_unavailable_per_call() -> TestResult {
    let dlq = PostgresDlq::connect_lazy(PostgresConfig::new(DEAD_URL, 1))?;
    let started = Instant::now();
    let err = dlq
        .add(letter("m-1", "a", "b", FailureReason::Unknown), T0, None)
        .await
        .err()
        .ok_or("add against a dead server succeeded")?;
    assert!(err.is_unavailable(), "{err:?}");
    assert!(err.to_string().contains("unavailable"), "{err}");
    assert!(dlq.count(&DlqQuery::all()).await.is_err());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    dlq.close().await?;
    assert!(matches!(
        dlq.count(&DlqQuery::all()).await,
        Err(DlqError::Closed)
    ));
    Ok(())
}

#[tokio::test]
async fn unroutable_connect_times_out() -> TestResult {
    // A listener that accepts TCP but never speaks the protocol.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let mut config = PostgresConfig::new(format!("postgres://postgres@127.0.0.1:{port}/test"), 1);
    config.connect_timeout = Duration::from_millis(300);
    let started = Instant::now();
    let err = PostgresDlq::connect_with(config)
        .await
        .err()
        .ok_or("connected to a silent server")?;
    assert!(err.is_unavailable(), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    hold.abort();
    Ok(())
}

#[tokio::test]
async fn configuration_is_checked() {
    let bad_schema = PostgresConfig::new(DEAD_URL, 1).with_schema("x; DROP TABLE y");
    assert!(matches!(
        PostgresDlq::connect_lazy(bad_schema),
        Err(DlqError::Config(_))
    ));
    assert!(matches!(
        PostgresDlq::connect_lazy(PostgresConfig::new(DEAD_URL, 0)),
        Err(DlqError::Config(_))
    ));
    assert!(matches!(
        PostgresDlq::connect_lazy(PostgresConfig::new("postgres://[::1", 1)),
        Err(DlqError::Config(_))
    ));
}

#[tokio::test]
async fn schema_uses_native_types_and_migrates_once() -> TestResult {
    if !postgres_available().await {
        return Ok(());
    }
    let url = postgres_url();
    let schema = unique_schema();
    let outcome = async {
        let first =
            PostgresDlq::connect_with(PostgresConfig::new(&url, 1).with_schema(&schema)).await?;
        let stored = first.add(full_letter("m-1", "bob"), T0, None).await?;
        // A second pool on the same schema finds the table migrated.
        let second =
            PostgresDlq::connect_with(PostgresConfig::new(&url, 1).with_schema(&schema)).await?;
        assert_eq!(second.get(&stored.id).await?, Some(stored));

        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
        let task = tokio::spawn(connection);
        let rows = client
            .query(
                "SELECT column_name, data_type FROM information_schema.columns \
                 WHERE table_schema = $1 AND table_name = 'dead_letters'",
                &[&schema],
            )
            .await?;
        let types: std::collections::BTreeMap<String, String> =
            rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        assert_eq!(types.len(), 27);
        for (column, expected) in [
            ("data", "jsonb"),
            ("payload_meta", "jsonb"),
            ("payload_extra", "jsonb"),
            ("sig", "jsonb"),
            ("dlq_ts", "bigint"),
            ("original_ts", "bigint"),
            ("next_retry_at", "bigint"),
            ("acknowledged", "boolean"),
            ("to_agent", "text"),
        ] {
            assert_eq!(
                types.get(column).map(String::as_str),
                Some(expected),
                "{column}"
            );
        }
        let versions: i64 = client
            .query_one(
                &format!("SELECT count(*) FROM \"{schema}\".dlq_schema_version"),
                &[],
            )
            .await?
            .get(0);
        assert_eq!(versions, 1);
        let indexes: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_indexes WHERE schemaname = $1 \
                 AND tablename = 'dead_letters'",
                &[&schema],
            )
            .await?
            .get(0);
        // Primary key plus the seven declared indexes.
        assert_eq!(indexes, 8);
        drop(client);
        let _ = task.await;
        first.close().await?;
        second.close().await?;
        Ok::<_, TestError>(())
    }
    .await;
    drop_schema(&url, &schema).await?;
    outcome
}
