//! The checks on what a run leaves behind: the volume against the blobs table, temp files,
//! jobs stranded by a killed Baton, and processes that died or ran long.

use super::{Check, Context};
use crate::faults::Fault;

/// The volume and the blobs table agree.
pub(super) fn volume_matches_rows(cx: &Context<'_>) -> Option<Check> {
    let facts = cx.inputs.facts;
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
    Some(Check::new(
        "no file on the volume lacks a row, and no row lacks its file",
        format!(
            "{} blob rows, {} blob files",
            facts.blob_rows.len(),
            facts.blob_files.len()
        ),
        v,
    ))
}

pub(super) fn no_temp_files(cx: &Context<'_>) -> Option<Check> {
    let temp_files = &cx.inputs.facts.temp_files;
    let v = temp_files
        .iter()
        .map(|f| format!("{f}: left behind (no upload was in progress at the end)"))
        .collect();
    Some(Check::new(
        "no temporary upload file is left in tmp/",
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
