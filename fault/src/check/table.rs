//! The summary table and figures: a row per fault, the total, and what the clients saw.

use std::collections::{HashMap, HashSet};

use uuid::Uuid;

use super::{ClientFigures, Context, Facts, JobFact, Row, SlowJob, TERMINAL_KINDS};
use crate::{
    faults::{Fault, FaultRecord},
    load::{KeyRecord, Kind, Outcome, Purpose},
    workers::WorkerExit,
};

/// The row of one fault's phase.
pub fn fault_row(cx: &Context<'_>, fault: &FaultRecord, poison: &str) -> Row {
    let phase: Vec<&KeyRecord> = cx.inputs.records.values().filter(|r| r.phase == fault.phase).collect();
    let mut row = tally(cx, fault.fault.name(), &phase);
    row.injected_s = fault.injected_s;
    let phase_ids: HashSet<Uuid> = phase.iter().flat_map(|r| r.ids()).collect();
    row.recovered_after_s = recovered_after(fault, &cx.inputs.facts.jobs, &cx.by_id, &phase_ids);
    row.slowest = slowest(&phase, &cx.by_id, cx.inputs.facts);
    if fault.fault == Fault::PoisonJob {
        poison.clone_into(&mut row.poison);
    }
    row
}

/// The accepted poison jobs.
pub fn poison_ids(cx: &Context<'_>) -> Vec<Uuid> {
    cx.accepted
        .iter()
        .filter(|r| r.kind == Kind::Poison)
        .flat_map(|r| r.ids())
        .collect()
}

/// `<status> <attempts used>/<max>` of the (last) poison job, or `-`.
pub fn poison_status(cx: &Context<'_>) -> String {
    poison_ids(cx)
        .iter()
        .rev()
        .find_map(|id| cx.by_id.get(id))
        .map(|job| {
            let used = job.attempt - job.first_attempt + 1;
            format!("{} {used}/{}", job.status, job.max_attempts)
        })
        .unwrap_or_else(|| "-".to_owned())
}

/// Workers the poison job crashed (SIGABRT).
pub fn poison_crashes(exits: &[WorkerExit]) -> usize {
    exits.iter().filter(|e| e.signal == Some(libc::SIGABRT)).count()
}

pub fn client_figures(records: &std::collections::BTreeMap<String, KeyRecord>) -> ClientFigures {
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
    clients
}

/// One row of the table: the keys submitted, accepted, finished, lost and duplicated.
pub fn tally(cx: &Context<'_>, name: &str, keys: &[&KeyRecord]) -> Row {
    let (by_id, by_key) = (&cx.by_id, &cx.by_key);
    let events = |id: Uuid, kind: &str| cx.events(id, kind);
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
    phase: &HashSet<Uuid>,
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
