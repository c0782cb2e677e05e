//! Part 5: Celery on the same RabbitMQ, next to Baton's end-to-end figures.

use std::time::Duration;

use anyhow::bail;

use crate::{
    Ctx, RSS_GOAL_MIB,
    cpu::{CpuMeter, Who},
    env::Service,
    peer,
    phases::e2e::EndToEnd,
    report::{Report, Target, num},
    rows::{cpu_row, latency_row},
    step,
};

/// Part 5, Celery on the same RabbitMQ: 1 MiB inline (base64) and a 300-byte reference.
pub async fn peer(ctx: &Ctx, report: &mut Report, baton: Option<EndToEnd>) -> anyhow::Result<()> {
    let section = "5 peer: Celery";
    let bench_dir = ctx.workspace.join("bench");
    let venv = &ctx.venv;
    let queue = ctx.celery_queue();
    let celery = peer::Celery {
        venv,
        bench_dir: &bench_dir,
        amqp_url: &ctx.options.amqp_url,
        queue: &queue,
        queue_type: &ctx.options.celery_queue_type,
        log_dir: &ctx.logs,
    };
    let (jobs, procs) = (ctx.scale.e2e_jobs, ctx.scale.peer_client_procs);
    step(&format!(
        "Celery: {jobs} tasks each with 1 MiB inline (base64), then with a 300-byte reference; \
         {procs} client processes, prefork worker x{}",
        ctx.scale.peer_concurrency
    ));
    let mut worker = celery.start_worker(ctx.scale.peer_concurrency)?;
    let timeout = Duration::from_secs(if ctx.options.quick { 120 } else { 900 });
    let meter = |worker: &Service| {
        CpuMeter::start(vec![
            ("celery-worker".to_owned(), vec![Who::Tree(worker.pid())]),
            ("celery-client".to_owned(), vec![Who::WaitedChildren]),
            ("rabbitmq".to_owned(), vec![Who::Comm("beam.smp")]),
        ])
    };
    let inline_meter = meter(&worker);
    let inline = celery.run("inline", jobs, procs, 1 << 20, timeout).await;
    let inline_cpu = inline_meter.finish();
    let inline = inline.and_then(|run| {
        worker.check_alive()?;
        Ok(run)
    });
    let (reference, reference_cpu) = match &inline {
        Ok(_) => {
            let reference_meter = meter(&worker);
            let run = celery.run("ref", jobs, procs, 1 << 20, timeout).await;
            (Some(run), Some(reference_meter.finish()))
        }
        Err(_) => (None, None),
    };
    worker.stop(Duration::from_secs(30)).await;
    let inline = inline?;
    let reference = reference.expect("ran after a successful inline run")?;
    let reference_cpu = reference_cpu.expect("measured with the run");
    for run in [&inline, &reference] {
        if run.errors > 0 {
            bail!("{} Celery tasks ({}) failed", run.errors, run.mode);
        }
    }

    if let Some(baton) = baton {
        report.compare(
            section,
            "Baton 1 MiB e2e vs Celery 1 MiB inline",
            baton.jobs_s,
            "jobs/s",
            format!("{} jobs/s", num(baton.jobs_s)),
            inline.jobs_s,
            format!("{} jobs/s Celery inline", num(inline.jobs_s)),
            Some(Target::AtLeast(3.0)),
        );
        report.compare(
            section,
            "Baton 1 MiB e2e peak RSS",
            baton.peak_rss_mib,
            "MiB",
            format!("{} MiB", num(baton.peak_rss_mib)),
            RSS_GOAL_MIB,
            format!("{RSS_GOAL_MIB} MiB goal"),
            Some(Target::AtMost(1.0)),
        );
    }
    for (run, cpu, what) in [
        (&inline, &inline_cpu, "1 MiB inline base64"),
        (&reference, &reference_cpu, "300-byte reference"),
    ] {
        cpu_row(report, section, cpu, run.jobs, &format!("job ({})", run.mode));
        report.info(
            section,
            &format!("Celery {what}"),
            run.jobs_s,
            "jobs/s",
            format!("{} jobs/s", num(run.jobs_s)),
        );
        latency_row(
            report,
            section,
            &format!("Celery {what}: submit -> done"),
            &run.submit_to_done,
        );
    }
    if let Some(baton) = baton {
        report.compare(
            section,
            "Baton 1 MiB e2e vs Celery 300-byte ref",
            baton.jobs_s,
            "jobs/s",
            format!("{} jobs/s", num(baton.jobs_s)),
            reference.jobs_s,
            format!("{} jobs/s Celery reference", num(reference.jobs_s)),
            None,
        );
    }
    report.detail(
        "peer",
        serde_json::json!({
            "celery": "5.7.0, pyamqp transport, confirm_publish, persistent messages, rpc:// results, \
                       prefork worker, default prefetch",
            "queue_type": ctx.options.celery_queue_type,
            "worker_concurrency": ctx.scale.peer_concurrency,
            "inline": inline,
            "inline_cpu": inline_cpu,
            "reference": reference,
            "reference_cpu": reference_cpu,
            "timestamps": "submit: the client's clock before apply_async; \
                           done: time.time() in the task, same host clock",
        }),
    );
    Ok(())
}
