//! The checker: what the clients were told, against what Postgres and the volume hold.

use std::{
    collections::{BTreeMap, HashMap},
    path::Path,
};

use anyhow::Context;
use serde::Serialize;
use sqlx::{PgPool, Row as _};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    faults::{Fault, FaultRecord},
    load::{KeyRecord, Kind, Outcome, Purpose},
    services::WorkerExit,
};

const TERMINAL_KINDS: [&str; 4] = ["succeeded", "failed", "timed_out", "cancelled"];

/// One job as Postgres has it.
#[derive(Debug, Clone)]
pub struct JobFact {
    pub id: Uuid,
    pub key: Option<String>,
    pub status: String,
    pub attempt: i32,
    pub first_attempt: i32,
    pub max_attempts: i32,
    pub has_result: bool,
    pub error_code: Option<String>,
    pub created_at: OffsetDateTime,
    pub finished_at: Option<OffsetDateTime>,
}

impl JobFact {
    pub fn terminal(&self) -> bool {
        matches!(self.status.as_str(), "succeeded" | "failed" | "cancelled")
    }
}

/// Everything the checker looks at, gathered once at the end of the run.
pub struct Facts {
    pub jobs: Vec<JobFact>,
    /// (job, timeline kind) → count.
    pub events: HashMap<(Uuid, String), i64>,
    /// Each job's timeline: (kind, at, attempt), in order.
    pub timelines: HashMap<Uuid, Vec<(String, OffsetDateTime, Option<i32>)>>,
    /// (owner, sha256) → size, from the `blobs` table.
    pub blob_rows: BTreeMap<(String, String), i64>,
    /// (owner, sha256) → size, from the files under `blobs/` on the volume.
    pub blob_files: BTreeMap<(String, String), u64>,
    /// Files under `blobs/` whose path is not a blob path.
    pub stray_files: Vec<String>,
    pub temp_files: Vec<String>,
    /// Outbox entries left: (job, its status, entry attempt, job attempt).
    pub outbox: Vec<(Uuid, String, i32, i32)>,
    pub file_rows: i64,
    /// Completed executions per job, from the workers' log.
    pub executions: HashMap<Uuid, usize>,
}

pub async fn gather(db: &PgPool, volume: &Path, executions_log: &Path) -> anyhow::Result<Facts> {
    let rows = sqlx::query(
        "SELECT id, idempotency_key, status, attempt, first_attempt, max_attempts, result IS NOT NULL AS has_result,
                error->>'code' AS error_code, created_at, finished_at
         FROM jobs",
    )
    .fetch_all(db)
    .await
    .context("reading jobs")?;
    let mut jobs = Vec::with_capacity(rows.len());
    for row in rows {
        jobs.push(JobFact {
            id: row.try_get("id")?,
            key: row.try_get("idempotency_key")?,
            status: row.try_get("status")?,
            attempt: row.try_get("attempt")?,
            first_attempt: row.try_get("first_attempt")?,
            max_attempts: row.try_get("max_attempts")?,
            has_result: row.try_get("has_result")?,
            error_code: row.try_get("error_code")?,
            created_at: row.try_get("created_at")?,
            finished_at: row.try_get("finished_at")?,
        });
    }
    let mut events = HashMap::new();
    for row in sqlx::query("SELECT job_id, kind, count(*) AS n FROM job_events GROUP BY job_id, kind")
        .fetch_all(db)
        .await
        .context("reading job_events")?
    {
        events.insert((row.try_get("job_id")?, row.try_get("kind")?), row.try_get("n")?);
    }
    let mut timelines: HashMap<Uuid, Vec<(String, OffsetDateTime, Option<i32>)>> = HashMap::new();
    for row in sqlx::query("SELECT job_id, kind, at, attempt FROM job_events ORDER BY at, id")
        .fetch_all(db)
        .await
        .context("reading job timelines")?
    {
        timelines.entry(row.try_get("job_id")?).or_default().push((
            row.try_get("kind")?,
            row.try_get("at")?,
            row.try_get("attempt")?,
        ));
    }
    let mut blob_rows = BTreeMap::new();
    for row in sqlx::query("SELECT owner, sha256, size FROM blobs")
        .fetch_all(db)
        .await
        .context("reading blobs")?
    {
        blob_rows.insert((row.try_get("owner")?, row.try_get("sha256")?), row.try_get("size")?);
    }
    let outbox: Vec<(Uuid, String, i32, i32)> = sqlx::query_as(
        "SELECT o.job_id, j.status, o.attempt, j.attempt FROM outbox o JOIN jobs j ON j.id = o.job_id ORDER BY o.job_id",
    )
    .fetch_all(db)
    .await
    .context("reading the outbox")?;
    let file_rows: i64 = sqlx::query_scalar("SELECT count(*) FROM files").fetch_one(db).await?;

    let mut blob_files = BTreeMap::new();
    let mut stray_files = Vec::new();
    let blobs = volume.join("blobs");
    for path in walk(&blobs) {
        let relative = path.strip_prefix(&blobs).unwrap_or(&path);
        let parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
        let valid = parts.len() == 4
            && parts[3].len() == 64
            && parts[3]
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            && parts[1] == parts[3][0..2]
            && parts[2] == parts[3][2..4];
        if valid {
            let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or_default();
            blob_files.insert((parts[0].clone(), parts[3].clone()), size);
        } else {
            stray_files.push(format!("blobs/{}", relative.display()));
        }
    }
    let tmp = volume.join("tmp");
    let temp_files = walk(&tmp)
        .iter()
        .map(|p| format!("tmp/{}", p.strip_prefix(&tmp).unwrap_or(p).display()))
        .collect();

    let mut executions = HashMap::new();
    if let Ok(text) = std::fs::read_to_string(executions_log) {
        for line in text.lines() {
            if let Some(id) = line.split_whitespace().next().and_then(|s| s.parse::<Uuid>().ok()) {
                *executions.entry(id).or_insert(0) += 1;
            }
        }
    }
    Ok(Facts {
        jobs,
        events,
        timelines,
        blob_rows,
        blob_files,
        stray_files,
        temp_files,
        outbox,
        file_rows,
        executions,
    })
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// One invariant's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    /// What was looked at, e.g. "60 jobs".
    pub scope: String,
    /// One line per violation.
    pub violations: Vec<String>,
}

/// One row of the summary table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub fault: String,
    pub injected_s: Option<f64>,
    pub recovered_after_s: Option<f64>,
    pub submitted: usize,
    pub accepted: usize,
    pub terminal: usize,
    pub lost: usize,
    pub duplicates: usize,
    pub poison: String,
    /// The accepted job of this row that took longest from its request to its end.
    pub slowest: Option<SlowJob>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SlowJob {
    pub key: String,
    pub id: Uuid,
    pub seconds: f64,
    /// `kind +seconds (attempt)` from the job's commit, in order; heartbeats left out.
    pub timeline: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ClientFigures {
    pub requests: usize,
    pub accepted_answers: usize,
    pub replayed_answers: usize,
    pub no_answer: usize,
    pub answered_5xx: usize,
    pub answered_503: usize,
    pub double_sends: usize,
    pub extra_sends: usize,
    pub keys_retried: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub rows: Vec<Row>,
    pub total: Row,
    pub checks: Vec<Check>,
    pub clients: ClientFigures,
    pub poison_crashes: usize,
    /// Jobs a worker ran to completion more than once (job, executions): at-least-once delivery;
    /// only one outcome may be recorded.
    pub executed_more_than_once: Vec<(Uuid, usize)>,
    /// Outbox entries left at the end, e.g. `<job> (succeeded, entry for attempt 1 of 2)`.
    pub outbox_left: Vec<String>,
    /// Input files of all jobs, and the distinct blobs holding them (fewer: deduplication).
    pub file_rows: i64,
    pub blobs: usize,
}

pub struct Inputs<'a> {
    pub records: &'a BTreeMap<String, KeyRecord>,
    pub faults: &'a [FaultRecord],
    pub facts: &'a Facts,
    pub worker_exits: &'a [WorkerExit],
    pub incidents: &'a [String],
    pub deadline_hit: bool,
}

pub fn judge(inputs: &Inputs<'_>) -> Verdict {
    let Inputs {
        records,
        faults,
        facts,
        worker_exits,
        incidents,
        deadline_hit,
    } = inputs;
    let by_id: HashMap<Uuid, &JobFact> = facts.jobs.iter().map(|j| (j.id, j)).collect();
    let mut by_key: HashMap<&str, Vec<&JobFact>> = HashMap::new();
    for job in &facts.jobs {
        if let Some(key) = &job.key {
            by_key.entry(key.as_str()).or_default().push(job);
        }
    }
    let events = |id: Uuid, kind: &str| facts.events.get(&(id, kind.to_owned())).copied().unwrap_or(0);
    let mut checks = Vec::new();
    let mut check = |name: &str, scope: String, violations: Vec<String>| {
        checks.push(Check {
            name: name.to_owned(),
            passed: violations.is_empty(),
            scope,
            violations,
        });
    };
    let accepted: Vec<&KeyRecord> = records.values().filter(|r| r.accepted()).collect();

    // Every id a client was told exists, under the key it was submitted with.
    let mut v = Vec::new();
    for record in &accepted {
        for id in record.ids() {
            match by_id.get(&id) {
                None => v.push(format!("{}: told job {id}, which does not exist", record.key)),
                Some(job) if job.key.as_deref() != Some(record.key.as_str()) => {
                    v.push(format!("{}: told job {id}, whose key is {:?}", record.key, job.key))
                }
                Some(_) => {}
            }
        }
    }
    check(
        "every job a client got a 2xx for exists, under its idempotency key",
        format!("{} accepted keys", accepted.len()),
        v,
    );

    // One job per key: every answer for a key named the same job, and Postgres has one row.
    let mut v = Vec::new();
    for record in records.values() {
        let ids = record.ids();
        if ids.len() > 1 {
            v.push(format!(
                "{}: clients were told {} different jobs: {ids:?}",
                record.key,
                ids.len()
            ));
        }
        let created = record
            .attempts
            .iter()
            .filter(|a| matches!(a.outcome, Outcome::Accepted { replayed: false, .. }))
            .count();
        if created > 1 {
            v.push(format!(
                "{}: {created} answers claimed to create the job (not replayed)",
                record.key
            ));
        }
        let rows = by_key.get(record.key.as_str()).map_or(0, Vec::len);
        if rows > 1 {
            v.push(format!("{}: {rows} jobs in Postgres", record.key));
        }
    }
    check(
        "one job per idempotency key (retries, double sends and extra sends all got the same job)",
        format!("{} keys", records.len()),
        v,
    );

    // Nothing appears that no client submitted.
    let mut v = Vec::new();
    for job in &facts.jobs {
        match &job.key {
            None => v.push(format!(
                "job {} has no idempotency key: no client of this run sent it",
                job.id
            )),
            Some(key) => match records.get(key) {
                None => v.push(format!("job {} has key {key}, which no client used", job.id)),
                Some(record) if !record.accepted() => {
                    // Submitted, never acknowledged: fine only if some answer was lost on the way.
                    let unknown = record
                        .attempts
                        .iter()
                        .any(|a| matches!(a.outcome, Outcome::NoAnswer { .. }));
                    if !unknown {
                        v.push(format!(
                            "job {} exists for {key}, whose every request was refused",
                            job.id
                        ));
                    }
                }
                Some(_) => {}
            },
        }
    }
    check(
        "no job appears that no client submitted",
        format!("{} jobs in Postgres", facts.jobs.len()),
        v,
    );

    // A refused submission stored nothing: a key whose requests before the first 2xx were all
    // answered with an error (no lost answers, no concurrent twin) must not get a replay.
    let mut v = Vec::new();
    let mut refused_then_accepted = 0;
    for record in records.values() {
        let Some(first) = record
            .attempts
            .iter()
            .position(|a| matches!(a.outcome, Outcome::Accepted { .. }))
        else {
            continue;
        };
        let before = &record.attempts[..first];
        if before.is_empty() {
            continue;
        }
        let all_refused = before
            .iter()
            .all(|a| a.purpose == Purpose::Submit && matches!(a.outcome, Outcome::Refused { .. }));
        let twin = record.attempts[first].purpose == Purpose::Double;
        if !all_refused || twin {
            continue;
        }
        refused_then_accepted += 1;
        if let Outcome::Accepted { replayed: true, id, .. } = record.attempts[first].outcome {
            let answers: Vec<String> = before
                .iter()
                .map(|a| match &a.outcome {
                    Outcome::Refused { status, code } => format!("{status} {code}"),
                    _ => String::new(),
                })
                .collect();
            v.push(format!(
                "{}: answered [{}], yet the next request found job {id} already stored",
                record.key,
                answers.join(", ")
            ));
        }
    }
    check(
        "a refused submission (e.g. 503 while Postgres restarts) stored nothing",
        format!("{refused_then_accepted} keys refused before being accepted"),
        v,
    );

    // Clients are never refused for a reason retrying cannot fix, and never give up.
    let mut v = Vec::new();
    for record in records.values() {
        for attempt in &record.attempts {
            if let Outcome::Refused { status, code } = &attempt.outcome
                && *status < 500
                && *status != 408
                && *status != 429
            {
                v.push(format!(
                    "{}: answered {status} {code} at +{:.1} s",
                    record.key, attempt.at_s
                ));
            }
        }
        if record.gave_up || !record.settled {
            v.push(format!(
                "{}: never accepted ({} requests)",
                record.key,
                record.attempts.len()
            ));
        }
    }
    check(
        "every submission was eventually accepted, none refused with a 4xx",
        format!("{} keys", records.len()),
        v,
    );

    // Every accepted job reaches a terminal state.
    let mut v = Vec::new();
    for record in &accepted {
        for id in record.ids() {
            if let Some(job) = by_id.get(&id)
                && !job.terminal()
            {
                v.push(format!(
                    "{} (job {id}): still {} at attempt {}",
                    record.key, job.status, job.attempt
                ));
            }
        }
    }
    check(
        "every job a client got a 2xx for reached a terminal state",
        format!("{} accepted keys", accepted.len()),
        v,
    );

    // Exactly one recorded outcome per terminal job.
    let mut v = Vec::new();
    for job in &facts.jobs {
        let terminal_events: i64 = TERMINAL_KINDS.iter().map(|k| events(job.id, k)).sum();
        let expected = i64::from(job.terminal());
        if terminal_events != expected {
            v.push(format!(
                "job {} ({}): {terminal_events} terminal timeline entries, expected {expected}",
                job.id, job.status
            ));
        }
        match job.status.as_str() {
            "succeeded" if !job.has_result || events(job.id, "succeeded") != 1 => v.push(format!(
                "job {} succeeded with result={} and {} 'succeeded' entries",
                job.id,
                job.has_result,
                events(job.id, "succeeded")
            )),
            "failed" | "cancelled" if job.has_result => {
                v.push(format!("job {} is {} yet holds a result", job.id, job.status))
            }
            _ => {}
        }
    }
    check(
        "each finished job has exactly one recorded outcome (one result and one 'succeeded' entry when it succeeded)",
        format!("{} jobs", facts.jobs.len()),
        v,
    );

    // Healthy jobs succeed: every fault here hits a job at most once, within its attempts.
    let mut v = Vec::new();
    let mut healthy = 0;
    for record in &accepted {
        if record.kind == Kind::Poison {
            continue;
        }
        for id in record.ids() {
            healthy += 1;
            if let Some(job) = by_id.get(&id)
                && job.terminal()
                && job.status != "succeeded"
            {
                v.push(format!(
                    "{} (job {id}): {} after {} attempt(s), error {:?}",
                    record.key,
                    job.status,
                    job.attempt - job.first_attempt + 1,
                    job.error_code
                ));
            }
        }
    }
    check(
        "every job other than the poison job succeeded",
        format!("{healthy} jobs"),
        v,
    );

    // The poison job fails after exactly its maximum attempts.
    let mut v = Vec::new();
    let mut poison_status = String::from("-");
    let poisons: Vec<Uuid> = accepted
        .iter()
        .filter(|r| r.kind == Kind::Poison)
        .flat_map(|r| r.ids())
        .collect();
    if poisons.is_empty() && faults.iter().any(|f| f.fault == Fault::PoisonJob) {
        v.push("the poison job was never accepted".to_owned());
    }
    for id in &poisons {
        match by_id.get(id) {
            Some(job) => {
                let used = job.attempt - job.first_attempt + 1;
                poison_status = format!("{} {used}/{}", job.status, job.max_attempts);
                if job.status != "failed" || used != job.max_attempts {
                    v.push(format!(
                        "poison job {id}: {} after {used} of {} attempts (error {:?})",
                        job.status, job.max_attempts, job.error_code
                    ));
                }
            }
            None => v.push(format!("poison job {id} does not exist")),
        }
    }
    let poison_crashes = worker_exits.iter().filter(|e| e.signal == Some(libc::SIGABRT)).count();
    check(
        "the poison job is failed after its maximum attempts",
        format!("{} poison job(s), {poison_crashes} worker crash(es)", poisons.len()),
        v,
    );

    // The volume and the blobs table agree.
    let mut v = Vec::new();
    for (key, size) in &facts.blob_files {
        match facts.blob_rows.get(key) {
            None => v.push(format!(
                "blobs/{}/…/{}: a file with no row ({size} bytes)",
                key.0, key.1
            )),
            Some(row) if u64::try_from(*row).ok() != Some(*size) => v.push(format!(
                "blobs/{}/…/{}: {size} bytes on disk, {row} in its row",
                key.0, key.1
            )),
            Some(_) => {}
        }
    }
    for key in facts.blob_rows.keys() {
        if !facts.blob_files.contains_key(key) {
            v.push(format!("blob row {}/{}: no file on the volume", key.0, key.1));
        }
    }
    for stray in &facts.stray_files {
        v.push(format!("{stray}: not a blob path"));
    }
    check(
        "no file on the volume lacks a row, and no row lacks its file",
        format!(
            "{} blob rows, {} blob files",
            facts.blob_rows.len(),
            facts.blob_files.len()
        ),
        v,
    );

    let v: Vec<String> = facts
        .temp_files
        .iter()
        .map(|f| format!("{f}: left behind (no upload was in progress at the end)"))
        .collect();
    check(
        "no temporary upload file is left in tmp/",
        format!("{} files", facts.temp_files.len()),
        v,
    );

    // Committed but unpublished when Baton died: delivered after the restart.
    if let Some(fault) = faults.iter().find(|f| f.fault == Fault::BatonSigkillUnpublished) {
        let mut v = fault.not_proven.clone();
        if fault.error.is_some() {
            v.push("the fault was not injected".into());
        }
        for id in &fault.unpublished_at_kill {
            match by_id.get(id) {
                Some(job) if job.status == "succeeded" => {}
                Some(job) => v.push(format!("job {id}: {} after the restart", job.status)),
                None => v.push(format!("job {id} vanished")),
            }
        }
        check(
            "jobs committed but not yet published when Baton was killed were delivered after its restart",
            format!("{} jobs unpublished at the kill", fault.unpublished_at_kill.len()),
            v,
        );
    }

    // Every fault was injected as planned.
    let v: Vec<String> = faults
        .iter()
        .filter_map(|f| f.error.as_ref().map(|e| format!("{}: {e}", f.fault.name())))
        .collect();
    check(
        "every fault was injected as planned",
        format!("{} faults", faults.len()),
        v,
    );

    // Processes died only when the suite killed them (or the poison job crashed them).
    let mut v: Vec<String> = incidents.to_vec();
    for exit in worker_exits.iter() {
        if !matches!(exit.signal, Some(libc::SIGABRT | libc::SIGKILL)) {
            v.push(format!(
                "worker {} (pid {}) exited by itself at +{:.1} s (code {:?}, signal {:?})",
                exit.worker, exit.pid, exit.at_s, exit.code, exit.signal
            ));
        }
    }
    check(
        "Baton and the workers exited only when killed (or crashed by the poison job)",
        format!("{} worker exits", worker_exits.len()),
        v,
    );

    let v = if *deadline_hit {
        vec!["the run did not finish within its deadline".to_owned()]
    } else {
        Vec::new()
    };
    check("the run finished within its deadline", String::new(), v);

    // The table.
    let mut rows = Vec::new();
    for fault in faults.iter() {
        let phase: Vec<&KeyRecord> = records.values().filter(|r| r.phase == fault.phase).collect();
        let mut row = tally(fault.fault.name(), &phase, &by_id, &by_key, &events);
        row.injected_s = fault.injected_s;
        let phase_ids: std::collections::HashSet<Uuid> = phase.iter().flat_map(|r| r.ids()).collect();
        row.recovered_after_s = recovered_after(fault, &facts.jobs, &by_id, &phase_ids);
        row.slowest = slowest(&phase, &by_id, facts);
        if fault.fault == Fault::PoisonJob {
            row.poison.clone_from(&poison_status);
        }
        rows.push(row);
    }
    let all: Vec<&KeyRecord> = records.values().collect();
    let mut total = tally("total", &all, &by_id, &by_key, &events);
    total.poison = poison_status;

    let mut clients = ClientFigures::default();
    for record in records.values() {
        let mut retried = false;
        for attempt in &record.attempts {
            clients.requests += 1;
            match &attempt.outcome {
                Outcome::Accepted { replayed, .. } => {
                    clients.accepted_answers += 1;
                    clients.replayed_answers += usize::from(*replayed);
                }
                Outcome::Refused { status, .. } => {
                    retried = true;
                    clients.answered_5xx += usize::from(*status >= 500);
                    clients.answered_503 += usize::from(*status == 503);
                }
                Outcome::NoAnswer { .. } => {
                    retried = true;
                    clients.no_answer += 1;
                }
            }
            clients.double_sends += usize::from(attempt.purpose == Purpose::Double);
            clients.extra_sends += usize::from(attempt.purpose == Purpose::Extra);
        }
        clients.keys_retried += usize::from(retried);
    }
    Verdict {
        rows,
        total,
        checks,
        clients,
        poison_crashes,
        executed_more_than_once: {
            let mut repeated: Vec<(Uuid, usize)> = facts
                .executions
                .iter()
                .filter(|(_, n)| **n > 1)
                .map(|(id, n)| (*id, *n))
                .collect();
            repeated.sort();
            repeated
        },
        outbox_left: facts
            .outbox
            .iter()
            .map(|(id, status, entry, attempt)| {
                format!("{id} ({status}, entry for attempt {entry}, job at attempt {attempt})")
            })
            .collect(),
        file_rows: facts.file_rows,
        blobs: facts.blob_rows.len(),
    }
}

fn tally(
    name: &str,
    keys: &[&KeyRecord],
    by_id: &HashMap<Uuid, &JobFact>,
    by_key: &HashMap<&str, Vec<&JobFact>>,
    events: &dyn Fn(Uuid, &str) -> i64,
) -> Row {
    let mut row = Row {
        fault: name.to_owned(),
        injected_s: None,
        recovered_after_s: None,
        submitted: keys.len(),
        accepted: 0,
        terminal: 0,
        lost: 0,
        duplicates: 0,
        poison: "-".into(),
        slowest: None,
    };
    for record in keys {
        let ids = record.ids();
        let rows = by_key.get(record.key.as_str()).map_or(0, Vec::len);
        let duplicated = ids.len() > 1
            || rows > 1
            || ids.iter().any(|id| {
                TERMINAL_KINDS.iter().map(|k| events(*id, k)).sum::<i64>() > 1 || events(*id, "succeeded") > 1
            });
        row.duplicates += usize::from(duplicated);
        if ids.is_empty() {
            continue;
        }
        row.accepted += 1;
        let terminal = ids.iter().all(|id| by_id.get(id).is_some_and(|j| j.terminal()));
        if terminal {
            row.terminal += 1;
        } else {
            row.lost += 1;
        }
    }
    row
}

/// From the injection until every job the fault caught is finished (those committed before the
/// broken part was whole again and unfinished at the injection, and the jobs it hit directly),
/// and, if any job of the same phase was committed after that, the first of them has finished:
/// service restored and nothing the fault caught left behind.
fn recovered_after(
    fault: &FaultRecord,
    jobs: &[JobFact],
    by_id: &HashMap<Uuid, &JobFact>,
    phase: &std::collections::HashSet<Uuid>,
) -> Option<f64> {
    let injected = fault.injected_at?;
    let healed = fault.healed_at.unwrap_or(injected);
    let mut caught: Vec<&JobFact> = jobs
        .iter()
        .filter(|j| j.created_at < healed && j.finished_at.is_none_or(|f| f > injected))
        .collect();
    caught.extend(fault.victims.iter().filter_map(|id| by_id.get(id).copied()));
    let mut recovered = injected;
    for job in caught {
        recovered = recovered.max(job.finished_at?);
    }
    let after: Vec<&JobFact> = jobs
        .iter()
        .filter(|j| j.created_at >= healed && phase.contains(&j.id))
        .collect();
    if let Some(first) = after.iter().min_by_key(|j| j.created_at) {
        recovered = recovered.max(first.finished_at?);
    }
    Some((recovered - injected).as_seconds_f64())
}

fn slowest(keys: &[&KeyRecord], by_id: &HashMap<Uuid, &JobFact>, facts: &Facts) -> Option<SlowJob> {
    let (record, job) = keys
        .iter()
        .flat_map(|r| r.ids().into_iter().filter_map(|id| by_id.get(&id).map(|j| (*r, *j))))
        .max_by_key(|(_, j)| j.finished_at.map(|f| f - j.created_at))?;
    let finished = job.finished_at?;
    let events = facts.timelines.get(&job.id)?;
    // Offsets from the first entry (`received`, when the request came in).
    let start = events.first().map_or(job.created_at, |(_, at, _)| *at);
    let timeline = events
        .iter()
        .filter(|(kind, _, _)| kind != "heartbeat")
        .map(|(kind, at, attempt)| {
            let offset = (*at - start).as_seconds_f64();
            match attempt {
                Some(a) => format!("{kind} +{offset:.1} s (attempt {a})"),
                None => format!("{kind} +{offset:.1} s"),
            }
        })
        .collect();
    Some(SlowJob {
        key: record.key.clone(),
        id: job.id,
        seconds: (finished - start).as_seconds_f64(),
        timeline,
    })
}
