//! Figures shared by the phases: CPU meters, table rows, error checks.

use anyhow::bail;

use crate::{
    MIB, RSS_GOAL_MIB,
    cpu::{CpuMeter, CpuUse, Who},
    load::LoopOutcome,
    report::{Report, Target, num},
    rss::RssStats,
    stats::Latency,
};

/// Starts measuring CPU time of Baton, the bench's own clients, Postgres and RabbitMQ (and any
/// `extra` components).
pub fn cpu_meter(baton_pid: u32, extra: Vec<(String, Vec<Who>)>) -> CpuMeter {
    let mut groups = vec![
        ("baton".to_owned(), vec![Who::Pid(baton_pid)]),
        ("bench".to_owned(), vec![Who::Pid(std::process::id())]),
        ("postgres".to_owned(), vec![Who::Comm("postgres")]),
        ("rabbitmq".to_owned(), vec![Who::Comm("beam.smp")]),
    ];
    groups.extend(extra);
    CpuMeter::start(groups)
}

pub fn cpu_row(report: &mut Report, section: &str, cpu: &CpuUse, units: usize, unit: &str) {
    let total: f64 = cpu.per(units).values().sum();
    report.info(
        section,
        &format!("CPU ms per {unit}"),
        total,
        &format!("ms/{unit}"),
        format!(
            "total {total:.2}: {}; machine {:.1}/{} cores busy",
            cpu.summary(units),
            cpu.machine_busy_cores,
            cpu.cores
        ),
    );
}

pub fn stage_p50(samples_ms: &[f64]) -> f64 {
    Latency::from_ms(samples_ms.to_vec()).p50_ms
}

pub fn check_errors(what: &str, outcome: &LoopOutcome) -> anyhow::Result<()> {
    if outcome.errors > 0 {
        bail!(
            "{what}: {} of {} requests failed; first: {}",
            outcome.errors,
            outcome.errors + outcome.submitted.len(),
            outcome.first_error.as_deref().unwrap_or("?")
        );
    }
    if outcome.submitted.is_empty() {
        bail!("{what}: no request completed");
    }
    Ok(())
}

pub fn latency_row(report: &mut Report, section: &str, figure: &str, latency: &Latency) {
    report.info(
        section,
        figure,
        latency.p99_ms,
        "ms (p99)",
        format!("p50 {} / p99 {} ms", num(latency.p50_ms), num(latency.p99_ms)),
    );
}

pub fn rss_row(report: &mut Report, section: &str, figure: &str, rss: &RssStats) {
    let peak = rss.peak_kib as f64 * 1024.0 / MIB;
    report.compare(
        section,
        figure,
        peak,
        "MiB",
        format!("{} MiB", num(peak)),
        RSS_GOAL_MIB,
        format!("{RSS_GOAL_MIB} MiB goal"),
        Some(Target::AtMost(1.0)),
    );
}

pub fn human_bytes(bytes: u64) -> String {
    if bytes >= 1 << 30 && bytes.is_multiple_of(1 << 30) {
        format!("{} GiB", bytes >> 30)
    } else {
        format!("{} MiB", bytes >> 20)
    }
}
