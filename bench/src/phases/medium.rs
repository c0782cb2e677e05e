//! Part 2: many concurrent 1 MiB uploads.

use crate::{
    Ctx, load,
    load::{JobSpec, Stop, Submitter},
    report::{Report, num},
    rows::{check_errors, cpu_meter, cpu_row, latency_row, rss_row},
    rss::RssSampler,
    stats::{Latency, mb_per_s, per_s},
    step,
    tap::Tap,
};

/// Part 2, many concurrent 1 MiB uploads.
pub async fn medium_uploads(ctx: &Ctx, report: &mut Report, upload_limit: Option<f64>) -> anyhow::Result<()> {
    let section = "2 medium uploads";
    let clients = ctx.scale.clients;
    step(&format!("Baton: {clients} clients uploading 1 MiB files"));
    let baton = ctx.start_baton("2").await?;
    let tap = Tap::start(&ctx.options.amqp_url, &ctx.prefix, &[ctx.queue("benchmedium")]).await?;
    let submitter = Submitter::new(ctx.client.clone(), &baton.base_url);
    let spec = JobSpec::new("benchmedium", 1 << 20, ctx.tag ^ 2);
    // A short warm-up: connections, Postgres pool.
    // A warm-up round: its figures are not kept.
    drop(load::closed_loop(&submitter, &spec, clients, Stop::Jobs(clients)).await);
    let sampler = RssSampler::start(baton.pid());
    let meter = cpu_meter(baton.pid(), Vec::new());
    let outcome = load::closed_loop(&submitter, &spec, clients, Stop::After(ctx.scale.phase)).await;
    let cpu = meter.finish();
    let rss = sampler.finish().await;
    check_errors("1 MiB uploads", &outcome)?;
    let jobs = outcome.submitted.len();
    let jobs_s = per_s(jobs, outcome.elapsed);
    let mb_s = mb_per_s(jobs as u64 * spec.size(), outcome.elapsed);
    let latency = Latency::from_durations(&outcome.latencies());

    report.info(
        section,
        &format!("1 MiB jobs, {clients} clients"),
        jobs_s,
        "jobs/s",
        format!("{} jobs/s", num(jobs_s)),
    );
    match upload_limit {
        Some(limit) => report.compare(
            section,
            "1 MiB jobs: upload rate",
            mb_s,
            "MB/s",
            format!("{} MB/s", num(mb_s)),
            limit,
            format!("{} MB/s = min(disk write, MD5)", num(limit)),
            None,
        ),
        None => report.info(
            section,
            "1 MiB jobs: upload rate",
            mb_s,
            "MB/s",
            format!("{} MB/s", num(mb_s)),
        ),
    }
    latency_row(report, section, "submit -> 202", &latency);
    rss_row(report, section, "Baton peak RSS", &rss);
    cpu_row(report, section, &cpu, jobs, "job");
    report.detail(
        "medium_uploads",
        serde_json::json!({
            "cpu": cpu,
            "clients": clients, "jobs": jobs, "seconds": outcome.elapsed.as_secs_f64(),
            "jobs_s": jobs_s, "mb_s": mb_s, "submit_to_202": latency, "rss": rss,
        }),
    );
    tap.close().await;
    baton.stop().await;
    Ok(())
}
