//! Hostile clients against a real Baton (real Postgres, RabbitMQ and volume): malformed,
//! oversized, slow and idle requests each get their documented 4xx (or a 503 `busy`), never a
//! 5xx, and leave nothing behind: no temp file, no blob, no row, no thread or socket, and no
//! memory. One sequential test in its own binary, so this process's RSS is Baton's plus a
//! small client's and can be measured.

mod cases;
mod connections;
mod form;
mod process;
mod raw;

use std::time::Duration;

use baton_e2e::{TestApp, TestEnv, amqp_url, eventually};

use crate::cases::Case;

/// RSS growth allowed over the buffering cases (about 1 GiB sent in all).
const RSS_GROWTH_BOUND: u64 = 48 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_a_clear_4xx_leave_nothing_behind_and_cost_bounded_memory() {
    let env = TestEnv::new().await;
    let app = env.spawn_app_with(&amqp_url(), cases::APP_FLAGS).await;
    let mut failures = Vec::new();

    let table: Vec<Case> = cases::form_cases().into_iter().chain(cases::read_cases()).collect();
    let count = table.len();
    for case in table {
        run(&env, &app, case, &mut failures).await;
    }
    println!("{count} request cases run");

    // Memory: the same bodies twice, so allocator warm-up does not count as growth.
    for case in cases::buffering_cases() {
        run(&env, &app, case, &mut failures).await;
    }
    let baseline = process::snapshot();
    for _ in 0..2 {
        for case in cases::buffering_cases() {
            run(&env, &app, case, &mut failures).await;
        }
    }
    let after = process::snapshot();
    println!(
        "RSS {} MiB before, {} MiB after ~1 GiB of hostile bodies",
        baseline.rss >> 20,
        after.rss >> 20
    );
    if after.rss > baseline.rss + RSS_GROWTH_BOUND {
        failures.push(format!(
            "RSS grew from {} MiB to {} MiB over the buffering cases",
            baseline.rss >> 20,
            after.rss >> 20
        ));
    }

    failures.extend(connections::run_all(&env, &app).await);

    // Nothing held on to: threads return to where they were, and every client connection is
    // closed on Baton's side too.
    let port = app.addr.port();
    let settled = eventually(Duration::from_secs(20), || async {
        process::snapshot().threads <= baseline.threads + 2 && process::open_server_connections(port) == 0
    })
    .await;
    if !settled {
        failures.push(format!(
            "threads {} → {}; {} connections still open on Baton's side",
            baseline.threads,
            process::snapshot().threads,
            process::open_server_connections(port)
        ));
    }

    // The same app still serves a normal client.
    let response = app
        .submit(baton_e2e::job_form(vec![(
            "input",
            baton_e2e::file_part(b"still here".to_vec(), "ok.txt", "text/plain"),
        )]))
        .await;
    if response.status() != 202 {
        failures.push(format!("a valid job after the attack got {}", response.status()));
    }

    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Sends one case and checks its answer and what it left.
async fn run(env: &TestEnv, app: &TestApp, case: Case, failures: &mut Vec<String>) {
    let name = case.name.clone();
    let response = match raw::exchange(app.addr, case.head, case.body.into_stream()).await {
        Ok(response) => response,
        Err(e) => {
            failures.push(format!("{name}: no response ({e})"));
            return;
        }
    };
    let code = response.code();
    if response.status != case.status || code != case.code {
        failures.push(format!(
            "{name}: expected {} {}, got {} {code}",
            case.status, case.code, response.status
        ));
    }
    if response.status == 503 && response.header("retry-after").is_none() {
        failures.push(format!("{name}: 503 without Retry-After"));
    }
    if let Some(left) = left_behind(env).await {
        failures.push(format!("{name}: left behind {left}"));
    }
}

/// What a rejected request left on the volume or in the database, if anything.
pub async fn left_behind(env: &TestEnv) -> Option<String> {
    let temp_gone = eventually(Duration::from_secs(5), || async { env.temp_files().is_empty() }).await;
    if !temp_gone {
        return Some(format!("temp files {:?}", env.temp_files()));
    }
    if !env.blob_files().is_empty() {
        return Some(format!("blob files {:?}", env.blob_files()));
    }
    for table in ["jobs", "files", "blobs", "outbox"] {
        let rows = env.count(table).await;
        if rows != 0 {
            return Some(format!("{rows} rows in {table}"));
        }
    }
    None
}
