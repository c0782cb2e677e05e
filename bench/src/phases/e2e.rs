//! Part 4: end to end through the example worker.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use anyhow::bail;
use sqlx::{Connection, PgConnection};

use crate::{
    Ctx,
    cpu::Who,
    env, load,
    load::{JobSpec, Stop, Submitter},
    report::{Report, num},
    rows::{check_errors, cpu_meter, cpu_row, latency_row, rss_row, stage_p50},
    rss::RssSampler,
    stats::Latency,
    step,
};

/// `(id, status, created, dispatched, started, finished)`, times as Unix seconds.
type JobTimes = (uuid::Uuid, String, f64, Option<f64>, Option<f64>, Option<f64>);

/// Baton's 1 MiB end-to-end figures, for the comparison with the peer.
#[derive(Debug, Clone, Copy)]
pub struct EndToEnd {
    pub jobs_s: f64,
    pub peak_rss_mib: f64,
}

/// Part 4, end to end through the example worker.
pub async fn end_to_end(ctx: &Ctx, report: &mut Report) -> anyhow::Result<EndToEnd> {
    let section = "4 end to end";
    let (jobs, clients, workers) = (ctx.scale.e2e_jobs, ctx.scale.clients, ctx.options.workers);
    step(&format!(
        "Baton end to end: {jobs} jobs of 1 MiB, {clients} clients, {workers} example workers (prefetch {})",
        ctx.options.worker_prefetch
    ));
    let baton = ctx.start_baton("4").await?;
    let mut worker_services = Vec::new();
    for i in 0..workers {
        worker_services.push(env::spawn_service(
            &format!("worker {i}"),
            &ctx.binaries.worker,
            &[],
            &[
                ("BATON_AMQP_URL", ctx.options.amqp_url.clone()),
                ("BATON_STORAGE_DIR", ctx.storage.to_string_lossy().into_owned()),
                ("BATON_WORKER_MODEL", "example".to_owned()),
                ("BATON_QUEUE_PREFIX", ctx.prefix.clone()),
                ("BATON_WORKER_PREFETCH", ctx.options.worker_prefetch.to_string()),
                ("BATON_WORKER_ID", format!("bench-worker-{i}")),
                ("BATON_LOG", "warn".to_owned()),
            ],
            None,
            ctx.logs.join(format!("worker-{i}.log")),
        )?);
    }
    let queue = ctx.queue("example");
    let deadline = Instant::now() + Duration::from_secs(30);
    while (env::consumer_count(&ctx.options.amqp_url, &ctx.prefix, &queue).await? as usize) < workers {
        for worker in &mut worker_services {
            worker.check_alive()?;
        }
        if Instant::now() > deadline {
            bail!("the example workers did not start consuming within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let submitter = Submitter::new(ctx.client.clone(), &baton.base_url);
    let spec = JobSpec::new("example", 1 << 20, ctx.tag ^ 4);
    let mut db = PgConnection::connect(&ctx.database.url).await?;
    let sampler = RssSampler::start(baton.pid());
    let worker_pids: Vec<Who> = worker_services.iter().map(|w| Who::Pid(w.pid())).collect();
    let meter = cpu_meter(baton.pid(), vec![("workers".to_owned(), worker_pids)]);
    let events_queue = baton_protocol::queue::events_queue(&ctx.prefix);
    let depths =
        crate::depth::DepthSampler::start(&ctx.options.amqp_url, vec![queue.clone(), events_queue.clone()]).await?;
    let outcome = load::closed_loop(&submitter, &spec, clients, Stop::Jobs(jobs)).await;
    check_errors("end-to-end submissions", &outcome)?;
    let submitted = outcome.submitted.len();
    let timeout = if ctx.options.quick { 60 } else { 600 };
    let deadline = Instant::now() + Duration::from_secs(timeout);
    loop {
        let finished: i64 =
            sqlx::query_scalar("SELECT count(*) FROM jobs WHERE model = 'example' AND finished_at IS NOT NULL")
                .fetch_one(&mut db)
                .await?;
        if finished as usize >= submitted {
            break;
        }
        if Instant::now() > deadline {
            bail!("only {finished} of {submitted} jobs finished within {timeout} s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cpu = meter.finish();
    let rss = sampler.finish().await;
    let depths = depths.finish().await;
    let rows: Vec<JobTimes> = sqlx::query_as(
        "SELECT id, status,
                    extract(epoch FROM created_at)::float8,
                    extract(epoch FROM dispatched_at)::float8,
                    extract(epoch FROM started_at)::float8,
                    extract(epoch FROM finished_at)::float8
             FROM jobs WHERE model = 'example'",
    )
    .fetch_all(&mut db)
    .await?;
    db.close().await?;
    for worker in worker_services {
        worker.stop(Duration::from_secs(30)).await;
    }
    baton.stop().await;

    let started_at: HashMap<uuid::Uuid, f64> = outcome.submitted.iter().map(|s| (s.id, s.started_unix)).collect();
    let first_submit = started_at.values().copied().fold(f64::INFINITY, f64::min);
    let (mut to_result, mut commit_to_result) = (Vec::new(), Vec::new());
    let (mut commit_to_dispatched, mut dispatched_to_started, mut started_to_finished) =
        (Vec::new(), Vec::new(), Vec::new());
    let mut last_finish = f64::NEG_INFINITY;
    let mut failed = 0;
    for (id, status, created, dispatched, started, finished) in &rows {
        if status != "succeeded" {
            failed += 1;
        }
        let Some(finished) = finished else { continue };
        last_finish = last_finish.max(*finished);
        if let Some(submitted_at) = started_at.get(id) {
            to_result.push((finished - submitted_at) * 1e3);
        }
        commit_to_result.push((finished - created) * 1e3);
        if let (Some(dispatched), Some(started)) = (dispatched, started) {
            commit_to_dispatched.push((dispatched - created) * 1e3);
            dispatched_to_started.push((started - dispatched) * 1e3);
            started_to_finished.push((finished - started) * 1e3);
        }
    }
    let seconds = last_finish - first_submit;
    let jobs_s = submitted as f64 / seconds;
    let to_result = Latency::from_ms(to_result);
    let commit_to_result = Latency::from_ms(commit_to_result);

    report.info(
        section,
        &format!(
            "1 MiB jobs end to end ({workers} workers x prefetch {})",
            ctx.options.worker_prefetch
        ),
        jobs_s,
        "jobs/s",
        format!("{} jobs/s", num(jobs_s)),
    );
    latency_row(report, section, "submit -> result recorded", &to_result);
    latency_row(report, section, "commit -> result recorded", &commit_to_result);
    rss_row(report, section, "Baton peak RSS", &rss);
    report.info(
        section,
        "Baton RSS growth over the run",
        rss.growth_mib(),
        "MiB",
        format!("{:+.1} MiB", rss.growth_mib()),
    );
    cpu_row(report, section, &cpu, submitted, "job");
    let depth = |name: &str| depths.iter().find(|(q, _)| q == name).map_or(0, |(_, d)| *d);
    let (jobs_depth, events_depth) = (depth(&queue), depth(&events_queue));
    report.info(
        section,
        "deepest backlog: job queue / events queue",
        f64::from(events_depth),
        "messages",
        format!("{jobs_depth} / {events_depth} messages"),
    );
    report.info(
        section,
        "stages p50: commit->dispatched, ->started, ->finished",
        stage_p50(&commit_to_dispatched),
        "ms",
        format!(
            "{} / {} / {} ms",
            num(stage_p50(&commit_to_dispatched)),
            num(stage_p50(&dispatched_to_started)),
            num(stage_p50(&started_to_finished))
        ),
    );
    report.detail(
        "end_to_end",
        serde_json::json!({
            "cpu": cpu,
            "max_queue_depth": { "jobs": jobs_depth, "events": events_depth },
            "jobs": submitted, "failed": failed, "clients": clients, "workers": workers,
            "worker_prefetch": ctx.options.worker_prefetch, "seconds": seconds, "jobs_s": jobs_s,
            "submit_to_202": Latency::from_durations(&outcome.latencies()),
            "submit_to_result": to_result,
            "commit_to_result": commit_to_result,
            "stages": {
                "commit_to_dispatched": Latency::from_ms(commit_to_dispatched.clone()),
                "dispatched_to_started": Latency::from_ms(dispatched_to_started.clone()),
                "started_to_finished": Latency::from_ms(started_to_finished.clone()),
            },
            "timestamps": "submit: the bench's clock before sending; created/dispatched/started/finished: \
                           Postgres now() in Baton's transactions, same host clock",
            "rss": rss,
        }),
    );
    Ok(EndToEnd {
        jobs_s,
        peak_rss_mib: rss.peak_mib(),
    })
}
