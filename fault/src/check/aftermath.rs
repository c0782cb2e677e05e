//! The checks on what a run leaves behind: the store (volume or object store) against the blobs
//! table, uploads in progress, jobs stranded by a killed Baton, and processes that died or ran
//! long.

use super::{Check, Context};
use crate::{faults::Fault, load::Outcome};

/// The store and the blobs table agree, and every row names the store the run writes to.
pub(super) fn store_matches_rows(cx: &Context<'_>) -> Option<Check> {
    let facts = cx.inputs.facts;
    let mut v = Vec::new();
    let expected = cx.inputs.expected_store.unwrap_or("volume");
    for (store, rows) in &facts.blob_stores {
        if store != expected {
            v.push(format!("{rows} blob row(s) name the store {store}, not {expected}"));
        }
    }
    for (key, size) in &facts.blob_files {
        match facts.blob_rows.get(key) {
            None => v.push(format!(
                "blobs/{}/…/{}: stored with no row ({size} bytes)",
                key.0, key.1
            )),
            Some(row) if u64::try_from(*row).ok() != Some(*size) => v.push(format!(
                "blobs/{}/…/{}: {size} bytes stored, {row} in its row",
                key.0, key.1
            )),
            Some(_) => {}
        }
    }
    for key in facts.blob_rows.keys() {
        if !facts.blob_files.contains_key(key) {
            v.push(format!("blob row {}/{}: nothing stored", key.0, key.1));
        }
    }
    for stray in &facts.stray_files {
        v.push(format!("{stray}: not a blob path"));
    }
    Some(Check::new(
        "no stored blob (file on the volume, or object) lacks a row, no row lacks its blob, every row names the \
         run's store",
        format!(
            "{} blob rows, {} stored blobs",
            facts.blob_rows.len(),
            facts.blob_files.len()
        ),
        v,
    ))
}

pub(super) fn no_uploads_left(cx: &Context<'_>) -> Option<Check> {
    let temp_files = &cx.inputs.facts.temp_files;
    let v = temp_files
        .iter()
        .map(|f| format!("{f}: left behind (no upload was in progress at the end)"))
        .collect();
    Some(Check::new(
        "no upload in progress is left (tmp/ on the volume, staging/ in an object store)",
        format!("{} files", temp_files.len()),
        v,
    ))
}

/// Committed but unpublished when Baton died: delivered after the restart.
pub(super) fn unpublished_delivered(cx: &Context<'_>) -> Option<Check> {
    let fault = cx
        .inputs
        .faults
        .iter()
        .find(|f| f.fault == Fault::BatonSigkillUnpublished)?;
    let mut v = fault.not_proven.clone();
    if fault.error.is_some() {
        v.push("the fault was not injected".into());
    }
    for id in &fault.unpublished_at_kill {
        match cx.by_id.get(id) {
            Some(job) if job.status == "succeeded" => {}
            Some(job) => v.push(format!("job {id}: {} after the restart", job.status)),
            None => v.push(format!("job {id} vanished")),
        }
    }
    Some(Check::new(
        "jobs committed but not yet published when Baton was killed were delivered after its restart",
        format!("{} jobs unpublished at the kill", fault.unpublished_at_kill.len()),
        v,
    ))
}

pub(super) fn faults_injected(cx: &Context<'_>) -> Option<Check> {
    let v = cx
        .inputs
        .faults
        .iter()
        .filter_map(|f| f.error.as_ref().map(|e| format!("{}: {e}", f.fault.name())))
        .collect();
    Some(Check::new(
        "every fault was injected as planned",
        format!("{} faults", cx.inputs.faults.len()),
        v,
    ))
}

/// Processes died only when the suite killed them (or the poison job crashed them).
pub(super) fn exits_only_when_killed(cx: &Context<'_>) -> Option<Check> {
    let mut v: Vec<String> = cx.inputs.incidents.to_vec();
    for exit in cx.inputs.worker_exits {
        if !matches!(exit.signal, Some(libc::SIGABRT | libc::SIGKILL)) {
            v.push(format!(
                "worker {} (pid {}) exited by itself at +{:.1} s (code {:?}, signal {:?})",
                exit.worker, exit.pid, exit.at_s, exit.code, exit.signal
            ));
        }
    }
    Some(Check::new(
        "Baton and the workers exited only when killed (or crashed by the poison job)",
        format!("{} worker exits", cx.inputs.worker_exits.len()),
        v,
    ))
}

pub(super) fn finished_in_time(cx: &Context<'_>) -> Option<Check> {
    let v = if cx.inputs.deadline_hit {
        vec!["the run did not finish within its deadline".to_owned()]
    } else {
        Vec::new()
    };
    Some(Check::new("the run finished within its deadline", String::new(), v))
}

/// While the object store was broken, Baton said so: every refusal in those phases is
/// `503 storage_unavailable` (the clients retry it), never another error.
pub(super) fn store_outage_answered_503(cx: &Context<'_>) -> Option<Check> {
    let phases: Vec<usize> = cx
        .inputs
        .faults
        .iter()
        .filter(|f| f.fault.breaks_store())
        .map(|f| f.phase)
        .collect();
    if phases.is_empty() {
        return None;
    }
    let (mut v, mut unavailable) = (Vec::new(), 0);
    for record in cx.inputs.records.values().filter(|r| phases.contains(&r.phase)) {
        for attempt in &record.attempts {
            match &attempt.outcome {
                Outcome::Refused { status: 503, code } if code == "storage_unavailable" => unavailable += 1,
                Outcome::Refused { status, code } => v.push(format!(
                    "{}: answered {status} {code} at +{:.1} s",
                    record.key, attempt.at_s
                )),
                _ => {}
            }
        }
    }
    Some(Check::new(
        "while the object store was down, submissions got 202 or 503 storage_unavailable, nothing else",
        format!("{unavailable} answers 503 storage_unavailable"),
        v,
    ))
}
