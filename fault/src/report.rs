//! What the suite prints and writes at the end: the summary table, the figures, the faults and
//! the checks (ending with PASS or FAIL), the JSON report, and the logs kept after a FAIL.

use std::{collections::BTreeMap, fmt, fmt::Write as _, path::Path, time::Duration};

use serde::Serialize;
use time::OffsetDateTime;

use crate::{
    Args,
    check::{Row, Verdict},
    faults::{Fault, FaultRecord},
    load::KeyRecord,
    workers::WorkerExit,
};

#[derive(Serialize)]
pub struct JsonReport<'a> {
    pub jobs: usize,
    pub storage: crate::store::Storage,
    pub clients: usize,
    pub workers: usize,
    pub wall_time_s: f64,
    pub deadline_s: f64,
    pub passed: bool,
    pub verdict: &'a Verdict,
    pub faults: &'a [FaultRecord],
    pub worker_exits: &'a [WorkerExit],
    pub incidents: &'a [String],
    pub keys: &'a BTreeMap<String, KeyRecord>,
}

fn seconds(value: Option<f64>, prefix: &str) -> String {
    value.map_or_else(|| "-".to_owned(), |s| format!("{prefix}{s:.1} s"))
}

pub fn report(
    args: &Args,
    verdict: &Verdict,
    faults: &[FaultRecord],
    wall_s: f64,
    deadline: Duration,
    passed: bool,
) -> Result<String, fmt::Error> {
    let mut out = String::new();
    writeln!(
        out,
        "\nbaton-fault: {} jobs, {} faults, {} clients, {} workers, blobs on {}; wall time {:.1} s (deadline {} s)\n",
        args.jobs,
        faults.iter().filter(|f| f.fault != Fault::Warmup).count(),
        args.clients,
        args.workers,
        match args.storage {
            crate::store::Storage::Volume => "the volume",
            crate::store::Storage::Azure => "Azure Blob (Azurite)",
        },
        wall_s,
        deadline.as_secs()
    )?;
    let header = [
        "fault",
        "injected at",
        "recovered after",
        "jobs submitted",
        "2xx",
        "terminal",
        "lost",
        "duplicates",
        "poison",
    ];
    let line = |row: &Row, total: bool| -> Vec<String> {
        vec![
            row.fault.clone(),
            if total {
                String::new()
            } else {
                seconds(row.injected_s, "+")
            },
            match (total, row.injected_s, row.recovered_after_s) {
                (true, _, _) | (false, None, _) => String::new(),
                (false, Some(_), None) => "not recovered".to_owned(),
                (false, Some(_), Some(s)) => format!("{s:.1} s"),
            },
            row.submitted.to_string(),
            row.accepted.to_string(),
            row.terminal.to_string(),
            row.lost.to_string(),
            row.duplicates.to_string(),
            row.poison.clone(),
        ]
    };
    let mut table: Vec<Vec<String>> = vec![header.iter().map(|h| (*h).to_owned()).collect()];
    table.extend(verdict.rows.iter().map(|r| line(r, false)));
    table.push(line(&verdict.total, true));
    let widths: Vec<usize> = (0..header.len())
        .map(|c| table.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for (i, row) in table.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, cell)| {
                if c == 0 || c == 8 {
                    format!("{cell:<width$}", width = widths[c])
                } else {
                    format!("{cell:>width$}", width = widths[c])
                }
            })
            .collect();
        writeln!(out, "| {} |", cells.join(" | "))?;
        if i == 0 {
            let rules: Vec<String> = widths
                .iter()
                .enumerate()
                .map(|(c, w)| {
                    if c == 0 || c == 8 {
                        "-".repeat(*w)
                    } else {
                        format!("{}:", "-".repeat(w - 1))
                    }
                })
                .collect();
            writeln!(out, "| {} |", rules.join(" | "))?;
        }
    }
    let c = &verdict.clients;
    writeln!(
        out,
        "\nclients: {} requests; {} answered 2xx ({} of them replays of an earlier submission); {} got no answer; \
         {} answered 5xx ({} of them 503); {} double sends, {} extra sends after a 2xx; {} keys needed a retry",
        c.requests,
        c.accepted_answers,
        c.replayed_answers,
        c.no_answer,
        c.answered_5xx,
        c.answered_503,
        c.double_sends,
        c.extra_sends,
        c.keys_retried
    )?;
    writeln!(
        out,
        "stored: {} input files stored as {} distinct blobs; jobs executed more than once (the extra outcomes \
         fenced off): {}; worker crashes from the poison job: {}; outbox entries left: {}",
        verdict.file_rows,
        verdict.blobs,
        verdict.executed_more_than_once.len(),
        verdict.poison_crashes,
        verdict.outbox_left.len()
    )?;
    for entry in &verdict.outbox_left {
        writeln!(out, "  outbox: {entry}")?;
    }
    writeln!(out, "\nfaults:")?;
    for (i, fault) in faults.iter().enumerate() {
        writeln!(out, "  {} ({})", fault.fault.name(), fault.fault.describe())?;
        for note in &fault.notes {
            writeln!(out, "    {note}")?;
        }
        if let Some(slow) = verdict.rows.get(i).and_then(|r| r.slowest.as_ref()) {
            writeln!(
                out,
                "    slowest job {} ({}): {:.1} s from request to end: {}",
                slow.key,
                slow.id,
                slow.seconds,
                slow.timeline.join(", ")
            )?;
        }
        if let Some(error) = &fault.error {
            writeln!(out, "    NOT INJECTED AS PLANNED: {error}")?;
        }
    }
    writeln!(out, "\nchecks:")?;
    for check in &verdict.checks {
        let scope = if check.scope.is_empty() {
            String::new()
        } else {
            format!(" ({})", check.scope)
        };
        writeln!(
            out,
            "  {}  {}{scope}",
            if check.passed { "PASS" } else { "FAIL" },
            check.name
        )?;
        for violation in check.violations.iter().take(10) {
            writeln!(out, "          {violation}")?;
        }
        if check.violations.len() > 10 {
            writeln!(out, "          ... and {} more", check.violations.len() - 10)?;
        }
    }
    // The last line: the verdict, and the count of checks in the form CI tools read.
    let failed = verdict.checks.iter().filter(|c| !c.passed).count();
    writeln!(
        out,
        "\n{}: {} passed, {failed} failed",
        if passed { "PASS" } else { "FAIL" },
        verdict.checks.len() - failed
    )?;
    Ok(out)
}

/// Removes the run directory; with `keep`, its logs are moved out first and their place printed.
pub fn keep_logs(dir: tempfile::TempDir, logs: &Path, keep: bool) {
    if keep {
        let kept = std::env::temp_dir().join(format!(
            "baton-fault-logs-{}",
            OffsetDateTime::now_utc().unix_timestamp()
        ));
        let root = dir.path();
        // Each copy is tried on its own: a run that failed early has only some of the logs.
        let copies = [
            copy_dir(logs, &kept),
            std::fs::copy(root.join("postgres/postgres.log"), kept.join("postgres.log")).map(drop),
            copy_dir(&root.join("rabbitmq/log"), &kept.join("rabbitmq")),
        ];
        for error in copies.into_iter().filter_map(Result::err) {
            eprintln!("baton-fault: a log could not be kept: {error}");
        }
        eprintln!("baton-fault: logs kept in {}", kept.display());
    }
    drop(dir);
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name()))?;
        }
    }
    Ok(())
}
