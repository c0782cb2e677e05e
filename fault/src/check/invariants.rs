//! The invariants, one small named check each. A check returns `None` when it does not apply to
//! this run (its fault was not part of it).

use super::{
    Check, Context, TERMINAL_KINDS,
    aftermath::{
        exits_only_when_killed, faults_injected, finished_in_time, no_uploads_left, store_matches_rows,
        store_outage_answered_503, unpublished_delivered,
    },
    answer_lost, table,
};
use crate::{
    faults::Fault,
    load::{Kind, Outcome, Purpose},
};

type Invariant = fn(&Context<'_>) -> Option<Check>;

/// Every check, in the order the report lists them.
pub const ALL: [Invariant; 16] = [
    accepted_jobs_exist,
    one_job_per_key,
    no_unsubmitted_job,
    refused_stored_nothing,
    no_client_refused,
    accepted_jobs_terminal,
    one_outcome_per_job,
    healthy_jobs_succeeded,
    poison_job_failed,
    store_matches_rows,
    no_uploads_left,
    store_outage_answered_503,
    unpublished_delivered,
    faults_injected,
    exits_only_when_killed,
    finished_in_time,
];

/// Every id a client was told exists, under the key it was submitted with.
fn accepted_jobs_exist(cx: &Context<'_>) -> Option<Check> {
    let mut v = Vec::new();
    for record in &cx.accepted {
        for id in record.ids() {
            match cx.by_id.get(&id) {
                None => v.push(format!("{}: told job {id}, which does not exist", record.key)),
                Some(job) if job.key.as_deref() != Some(record.key.as_str()) => {
                    v.push(format!("{}: told job {id}, whose key is {:?}", record.key, job.key))
                }
                Some(_) => {}
            }
        }
    }
    Some(Check::new(
        "every job a client got a 2xx for exists, under its idempotency key",
        format!("{} accepted keys", cx.accepted.len()),
        v,
    ))
}

/// One job per key: every answer for a key named the same job, and Postgres has one row.
fn one_job_per_key(cx: &Context<'_>) -> Option<Check> {
    let mut v = Vec::new();
    for record in cx.inputs.records.values() {
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
        let rows = cx.by_key.get(record.key.as_str()).map_or(0, Vec::len);
        if rows > 1 {
            v.push(format!("{}: {rows} jobs in Postgres", record.key));
        }
    }
    Some(Check::new(
        "one job per idempotency key (retries, double sends and extra sends all got the same job)",
        format!("{} keys", cx.inputs.records.len()),
        v,
    ))
}

/// Nothing appears that no client submitted.
fn no_unsubmitted_job(cx: &Context<'_>) -> Option<Check> {
    let mut v = Vec::new();
    for job in &cx.inputs.facts.jobs {
        match &job.key {
            None => v.push(format!(
                "job {} has no idempotency key: no client of this run sent it",
                job.id
            )),
            Some(key) => match cx.inputs.records.get(key) {
                None => v.push(format!("job {} has key {key}, which no client used", job.id)),
                // Submitted, never acknowledged: fine only if some answer was lost on the way.
                Some(record) if !record.accepted() && !answer_lost(record) => v.push(format!(
                    "job {} exists for {key}, whose every request was refused",
                    job.id
                )),
                Some(_) => {}
            },
        }
    }
    Some(Check::new(
        "no job appears that no client submitted",
        format!("{} jobs in Postgres", cx.inputs.facts.jobs.len()),
        v,
    ))
}

/// A refused submission stored nothing: a key whose requests before the first 2xx were all
/// answered with an error (no lost answers, no concurrent twin) must not get a replay.
fn refused_stored_nothing(cx: &Context<'_>) -> Option<Check> {
    let mut v = Vec::new();
    let mut refused_then_accepted = 0;
    for record in cx.inputs.records.values() {
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
    Some(Check::new(
        "a refused submission (e.g. 503 while Postgres restarts) stored nothing",
        format!("{refused_then_accepted} keys refused before being accepted"),
        v,
    ))
}

/// Clients are never refused for a reason retrying cannot fix, and never give up.
fn no_client_refused(cx: &Context<'_>) -> Option<Check> {
    let mut v = Vec::new();
    for record in cx.inputs.records.values() {
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
    Some(Check::new(
        "every submission was eventually accepted, none refused with a 4xx",
        format!("{} keys", cx.inputs.records.len()),
        v,
    ))
}

/// Every accepted job reaches a terminal state.
fn accepted_jobs_terminal(cx: &Context<'_>) -> Option<Check> {
    let mut v = Vec::new();
    for record in &cx.accepted {
        for id in record.ids() {
            if let Some(job) = cx.by_id.get(&id)
                && !job.terminal()
            {
                v.push(format!(
                    "{} (job {id}): still {} at attempt {}",
                    record.key, job.status, job.attempt
                ));
            }
        }
    }
    Some(Check::new(
        "every job a client got a 2xx for reached a terminal state",
        format!("{} accepted keys", cx.accepted.len()),
        v,
    ))
}

/// Exactly one recorded outcome per terminal job.
fn one_outcome_per_job(cx: &Context<'_>) -> Option<Check> {
    let mut v = Vec::new();
    for job in &cx.inputs.facts.jobs {
        let terminal_events: i64 = TERMINAL_KINDS.iter().map(|k| cx.events(job.id, k)).sum();
        let expected = i64::from(job.terminal());
        if terminal_events != expected {
            v.push(format!(
                "job {} ({}): {terminal_events} terminal timeline entries, expected {expected}",
                job.id, job.status
            ));
        }
        let succeeded = cx.events(job.id, "succeeded");
        match job.status.as_str() {
            "succeeded" if !job.has_result || succeeded != 1 => v.push(format!(
                "job {} succeeded with result={} and {succeeded} 'succeeded' entries",
                job.id, job.has_result,
            )),
            "failed" | "cancelled" if job.has_result => {
                v.push(format!("job {} is {} yet holds a result", job.id, job.status))
            }
            _ => {}
        }
    }
    Some(Check::new(
        "each finished job has exactly one recorded outcome (one result and one 'succeeded' entry when it succeeded)",
        format!("{} jobs", cx.inputs.facts.jobs.len()),
        v,
    ))
}

/// Healthy jobs succeed: every fault here hits a job at most once, within its attempts.
fn healthy_jobs_succeeded(cx: &Context<'_>) -> Option<Check> {
    let mut v = Vec::new();
    let mut healthy = 0;
    for record in cx.accepted.iter().filter(|r| r.kind != Kind::Poison) {
        for id in record.ids() {
            healthy += 1;
            if let Some(job) = cx.by_id.get(&id)
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
    Some(Check::new(
        "every job other than the poison job succeeded",
        format!("{healthy} jobs"),
        v,
    ))
}

/// The poison job fails after exactly its maximum attempts.
fn poison_job_failed(cx: &Context<'_>) -> Option<Check> {
    let mut v = Vec::new();
    let poisons = table::poison_ids(cx);
    if poisons.is_empty() && cx.inputs.faults.iter().any(|f| f.fault == Fault::PoisonJob) {
        v.push("the poison job was never accepted".to_owned());
    }
    for id in &poisons {
        match cx.by_id.get(id) {
            Some(job) => {
                let used = job.attempt - job.first_attempt + 1;
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
    let crashes = table::poison_crashes(cx.inputs.worker_exits);
    Some(Check::new(
        "the poison job is failed after its maximum attempts",
        format!("{} poison job(s), {crashes} worker crash(es)", poisons.len()),
        v,
    ))
}
