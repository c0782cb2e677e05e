//! The checker: what the clients were told, against what Postgres and the volume hold. Each
//! invariant is a small named check in [`invariants::ALL`]; [`table`] adds the summary figures.

mod aftermath;
mod facts;
mod invariants;
mod table;

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use uuid::Uuid;

pub use facts::{Facts, JobFact, StoredFiles, gather};

use crate::{
    faults::FaultRecord,
    load::{KeyRecord, Outcome},
    workers::WorkerExit,
};

/// The timeline kinds that end a job.
const TERMINAL_KINDS: [&str; 4] = ["succeeded", "failed", "timed_out", "cancelled"];

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

#[derive(Clone, Copy)]
pub struct Inputs<'a> {
    /// The object store blobs must be in (`az://…`), or `None` for the volume.
    pub expected_store: Option<&'a str>,
    pub records: &'a BTreeMap<String, KeyRecord>,
    pub faults: &'a [FaultRecord],
    pub facts: &'a Facts,
    pub worker_exits: &'a [WorkerExit],
    pub incidents: &'a [String],
    pub deadline_hit: bool,
}

impl Check {
    fn new(name: &str, scope: String, violations: Vec<String>) -> Self {
        Self {
            name: name.to_owned(),
            passed: violations.is_empty(),
            scope,
            violations,
        }
    }
}

/// The inputs with the lookups every check needs.
pub struct Context<'a> {
    pub inputs: Inputs<'a>,
    pub by_id: HashMap<Uuid, &'a JobFact>,
    pub by_key: HashMap<&'a str, Vec<&'a JobFact>>,
    /// The keys a client got a 2xx for.
    pub accepted: Vec<&'a KeyRecord>,
}

impl<'a> Context<'a> {
    fn new(inputs: &Inputs<'a>) -> Self {
        let facts = inputs.facts;
        let by_id = facts.jobs.iter().map(|j| (j.id, j)).collect();
        let mut by_key: HashMap<&str, Vec<&JobFact>> = HashMap::new();
        for job in &facts.jobs {
            if let Some(key) = &job.key {
                by_key.entry(key.as_str()).or_default().push(job);
            }
        }
        Self {
            inputs: *inputs,
            by_id,
            by_key,
            accepted: inputs.records.values().filter(|r| r.accepted()).collect(),
        }
    }

    /// Timeline entries of `kind` for job `id`.
    fn events(&self, id: Uuid, kind: &str) -> i64 {
        self.inputs
            .facts
            .events
            .get(&(id, kind.to_owned()))
            .copied()
            .unwrap_or(0)
    }
}

pub fn judge(inputs: &Inputs<'_>) -> Verdict {
    let cx = Context::new(inputs);
    let checks = invariants::ALL.iter().filter_map(|check| check(&cx)).collect();
    let poison = table::poison_status(&cx);
    let mut rows = Vec::new();
    for fault in cx.inputs.faults {
        rows.push(table::fault_row(&cx, fault, &poison));
    }
    let all: Vec<&KeyRecord> = cx.inputs.records.values().collect();
    let mut total = table::tally(&cx, "total", &all);
    total.poison = poison;
    let facts = cx.inputs.facts;
    Verdict {
        rows,
        total,
        checks,
        clients: table::client_figures(cx.inputs.records),
        poison_crashes: table::poison_crashes(cx.inputs.worker_exits),
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

/// Whether any answer for `record` was lost on the way (so a row without a 2xx is possible).
fn answer_lost(record: &KeyRecord) -> bool {
    record
        .attempts
        .iter()
        .any(|a| matches!(a.outcome, Outcome::NoAnswer { .. }))
}
