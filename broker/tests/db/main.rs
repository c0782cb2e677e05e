//! The queries of `db/`, one file per table, each test on its own database (`#[sqlx::test]`
//! creates it from `DATABASE_URL` and runs the migrations in `sql/`).

mod blobs;
mod helpers;
mod jobs;
mod outbox;
mod timeline;
