//! Advisory locks: the tasks that one replica at a time may run.

use sqlx::PgConnection;

/// Key of the session-level advisory lock held by the one replica running a cleanup pass.
const PASS_LOCK: i64 = 0x6261_746f_6e5f_636c; // "baton_cl"

/// Takes the cleanup pass lock on this session if no other session holds it.
pub async fn try_lock_cleanup_pass(conn: &mut PgConnection) -> sqlx::Result<bool> {
    sqlx::query_scalar!(r#"SELECT pg_try_advisory_lock($1) AS "locked!""#, PASS_LOCK)
        .fetch_one(conn)
        .await
}
