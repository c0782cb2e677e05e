//! Prometheus metrics: names, descriptions, and the process-wide recorder.
//!
//! Counters and histograms are recorded where things happen; gauges that mirror Postgres (jobs
//! by model and state, dispatch backlog) are refreshed when `/metrics` is scraped, so every
//! replica reports the same truth.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const JOBS: &str = "baton_jobs";
pub const JOBS_SUBMITTED: &str = "baton_jobs_submitted_total";
pub const JOBS_FINISHED: &str = "baton_jobs_finished_total";
pub const QUEUE_WAIT: &str = "baton_job_queue_wait_seconds";
pub const RUN_TIME: &str = "baton_job_run_seconds";
pub const ATTEMPTS_STARTED: &str = "baton_job_attempts_started_total";
pub const RETRIES: &str = "baton_job_retries_total";
pub const DISPATCH_BACKLOG: &str = "baton_dispatch_backlog";
pub const DISPATCHED: &str = "baton_dispatched_total";
pub const DISPATCH_FAILURES: &str = "baton_dispatch_failures_total";
pub const DEAD_LETTERS: &str = "baton_dead_letters_total";
pub const LEASE_EXPIRIES: &str = "baton_lease_expiries_total";
pub const UPLOAD_BYTES: &str = "baton_upload_bytes_total";
pub const UPLOAD_FILES: &str = "baton_upload_files_total";
pub const DEDUP_HITS: &str = "baton_dedup_hits_total";
pub const UPLOADS_IN_PROGRESS: &str = "baton_uploads_in_progress";
pub const HTTP_ERRORS: &str = "baton_http_errors_total";
pub const CONNECTIONS_REFUSED: &str = "baton_connections_refused_total";
pub const WORKER_EVENTS: &str = "baton_worker_events_total";
pub const AMQP_CONNECTED: &str = "baton_rabbitmq_connected";
pub const POSTGRES_UP: &str = "baton_postgres_up";
pub const CLEANUP_PASSES: &str = "baton_cleanup_passes_total";
pub const CLEANUP_PASS_TIME: &str = "baton_cleanup_pass_seconds";
pub const CLEANUP_JOBS: &str = "baton_cleanup_jobs_deleted_total";
pub const CLEANUP_FILES: &str = "baton_cleanup_files_deleted_total";
pub const CLEANUP_BLOBS: &str = "baton_cleanup_blobs_deleted_total";
pub const CLEANUP_BYTES: &str = "baton_cleanup_bytes_freed_total";
pub const CLEANUP_ORPHANS: &str = "baton_cleanup_orphan_files_removed_total";
pub const CLEANUP_TEMP_FILES: &str = "baton_cleanup_temp_files_removed_total";
pub const CLEANUP_MISSING: &str = "baton_cleanup_missing_files_found_total";
pub const CLEANUP_DEFERRED: &str = "baton_cleanup_deferred_total";
pub const BLOBS_MISSING: &str = "baton_blobs_missing";
pub const REPLICATION_LAG: &str = "baton_replication_lag_seconds";
pub const REPLICATION_UNREPLICATED_BYTES: &str = "baton_replication_unreplicated_bytes";
pub const REPLICATION_UNREPLICATED_BLOBS: &str = "baton_replication_unreplicated_blobs";
pub const REPLICATION_FAILURES: &str = "baton_replication_failures_total";
pub const REPLICATION_BLOBS: &str = "baton_replication_blobs_total";
pub const REPLICATION_BYTES: &str = "baton_replication_bytes_total";
pub const MIGRATION_BLOBS: &str = "baton_migration_blobs_total";
pub const MIGRATION_BYTES: &str = "baton_migration_bytes_total";
pub const MIGRATION_REMAINING: &str = "baton_migration_remaining_blobs";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The recorder's handle, installing the recorder on first use (once per process: several
/// Baton instances in one process, as in tests, share it).
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let seconds = [
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
        ];
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &seconds)
            .expect("bucket list is not empty");
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics may be empty");
        }
        describe();
        handle
    })
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(JOBS, "Jobs by model and status, as stored in Postgres");
    describe_counter!(JOBS_SUBMITTED, "Jobs accepted (202) by model");
    describe_counter!(
        JOBS_FINISHED,
        "Jobs that reached a terminal status, by model and status"
    );
    describe_histogram!(
        QUEUE_WAIT,
        Unit::Seconds,
        "Time from submit (or retry) to a worker starting the attempt"
    );
    describe_histogram!(
        RUN_TIME,
        Unit::Seconds,
        "Time from a worker starting an attempt to its outcome"
    );
    describe_counter!(ATTEMPTS_STARTED, "Attempts started by workers, by model");
    describe_counter!(
        RETRIES,
        "Attempts scheduled again after a failure or lost lease, by model and reason"
    );
    describe_gauge!(DISPATCH_BACKLOG, "Job attempts waiting to be published to RabbitMQ");
    describe_counter!(DISPATCHED, "Job messages confirmed by RabbitMQ");
    describe_counter!(DISPATCH_FAILURES, "Job messages RabbitMQ did not confirm, by reason");
    describe_counter!(DEAD_LETTERS, "Messages RabbitMQ gave up on and Baton handled");
    describe_counter!(LEASE_EXPIRIES, "Running attempts whose lease expired");
    describe_counter!(
        UPLOAD_BYTES,
        Unit::Bytes,
        "Bytes received in file parts of accepted jobs"
    );
    describe_counter!(UPLOAD_FILES, "Files in accepted jobs");
    describe_counter!(
        DEDUP_HITS,
        "Files whose bytes were already stored and not written again"
    );
    describe_gauge!(UPLOADS_IN_PROGRESS, "Submit requests reading their body now");
    describe_counter!(
        HTTP_ERRORS,
        "Error responses by code (uploads cut for being slow, requests shed for load, ...)"
    );
    describe_counter!(
        CONNECTIONS_REFUSED,
        "Connections beyond BATON_MAX_CONNECTIONS, answered 503 and closed"
    );
    describe_counter!(WORKER_EVENTS, "Worker events by type and whether they changed a job");
    describe_gauge!(AMQP_CONNECTED, "1 when the named RabbitMQ connection is up");
    describe_gauge!(POSTGRES_UP, "1 when the last Postgres check succeeded");
    describe_counter!(
        CLEANUP_PASSES,
        "Cleanup passes by outcome: done, busy (another replica ran one), interrupted, failed"
    );
    describe_histogram!(CLEANUP_PASS_TIME, Unit::Seconds, "Duration of cleanup passes");
    describe_counter!(CLEANUP_JOBS, "Finished jobs deleted after their retention, by status");
    describe_counter!(CLEANUP_FILES, "Input file rows deleted with their jobs");
    describe_counter!(CLEANUP_BLOBS, "Blobs deleted once no file referred to them");
    describe_counter!(
        CLEANUP_BYTES,
        Unit::Bytes,
        "Bytes freed in the stores, by source: blobs, orphans, temp, moved_copies"
    );
    describe_counter!(
        CLEANUP_ORPHANS,
        "Blob files without a row removed after the grace period"
    );
    describe_counter!(
        CLEANUP_TEMP_FILES,
        "Temp files of interrupted uploads removed after the grace period"
    );
    describe_counter!(
        CLEANUP_MISSING,
        "Blob rows found without their file (each counted once)"
    );
    describe_counter!(
        CLEANUP_DEFERRED,
        "Files left for a later pass because an upload of the same content was committing"
    );
    describe_gauge!(BLOBS_MISSING, "Blob rows currently marked as missing their file");
    describe_gauge!(
        REPLICATION_LAG,
        Unit::Seconds,
        "Age of the oldest blob on the volume without a verified copy in the replica store (0: none)"
    );
    describe_gauge!(
        REPLICATION_UNREPLICATED_BYTES,
        Unit::Bytes,
        "Bytes of the blobs on the volume without a verified copy in the replica store"
    );
    describe_gauge!(
        REPLICATION_UNREPLICATED_BLOBS,
        "Blobs on the volume without a verified copy in the replica store"
    );
    describe_counter!(
        REPLICATION_FAILURES,
        "Copies to the replica store that failed and will be retried, by reason: unavailable, mismatch, source, io"
    );
    describe_counter!(REPLICATION_BLOBS, "Blobs copied to the replica store and verified");
    describe_counter!(
        REPLICATION_BYTES,
        Unit::Bytes,
        "Bytes copied to the replica store and verified"
    );
    describe_counter!(
        MIGRATION_BLOBS,
        "Blobs the current (or last) storage migration moved to its target, copied and verified"
    );
    describe_counter!(
        MIGRATION_BYTES,
        Unit::Bytes,
        "Bytes of the blobs the current (or last) storage migration moved"
    );
    describe_gauge!(
        MIGRATION_REMAINING,
        "Blobs outside the unfinished storage migration's target (0 when none is running)"
    );
}
