//! Behavioural suite run unchanged against every backend.
//!
//! PostgreSQL scenarios use a schema of their own per test and are skipped
//! (loudly) when the server in `RELAY_TEST_POSTGRES_URL` is unreachable,
//! unless `RELAY_TEST_REQUIRE_SERVICES=1`.

#[path = "../common/mod.rs"]
mod common;
mod lifecycle;
mod queries;
mod records;

use std::sync::Arc;

use common::*;
use lifecycle::*;
use queries::*;
use records::*;
use relay_dlq::DlqStore;

/// The store under test.
pub type Store = Arc<dyn DlqStore>;

/// One `#[tokio::test]` per backend for each listed scenario.
macro_rules! suite {
    ($($scenario:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $scenario() -> super::TestResult {
                    super::run(super::Backend::Memory, super::$scenario).await
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test]
                async fn $scenario() -> super::TestResult {
                    super::run(super::Backend::Sqlite, super::$scenario).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $scenario() -> super::TestResult {
                    super::run(super::Backend::Postgres, super::$scenario).await
                }
            )*
        }
    };
}

suite!(
    add_round_trips_every_field,
    add_upserts_on_message_and_target,
    import_keeps_the_record,
    get_by_exact_id_and_prefix,
    query_filters,
    query_orders,
    query_limit_and_offset,
    acknowledge_only_once,
    set_state_transitions,
    due_for_retry_selects_and_orders,
    pending_for_target_oldest_first,
    purge_by_filter,
    stats_cover_everything,
    cleanup_retention_keeps_unsettled,
    cleanup_overflow_evicts_settled_first,
    closed_store_refuses_calls,
);
