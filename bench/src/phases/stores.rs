//! Parts 1 and 2 again on object storage: S3 on moto and Azure Blob on Azurite, each a private
//! emulator started for the part. Baton's upload rate is shown next to the same emulator's raw
//! put of the same bytes, measured just before with `object_store` directly, the way Baton puts
//! them: the ratio is Baton's share of what the store takes on this machine.

use std::sync::Arc;

use anyhow::Context;
use baton_testkit::object_stores::{Backend, Emulator, TestStore};
use object_store::ObjectStore;

use crate::{
    Ctx, load,
    load::{JobSpec, Stop, Submitter},
    raw_store::{self, PART_BYTES, PARTS_IN_FLIGHT},
    report::{Report, num},
    rows::{check_errors, cpu_meter, cpu_row, human_bytes, latency_row, rss_row},
    rss::RssSampler,
    stats::{Latency, mb_per_s, per_s},
    step,
    tap::Tap,
};

/// Which of the two uploads to measure on each store.
#[derive(Debug, Clone, Copy)]
pub struct Which {
    pub large: bool,
    pub medium: bool,
}

/// One store under measurement: its emulator, Baton's location in it, and a raw client.
struct OnStore<'a> {
    ctx: &'a Ctx,
    backend: Backend,
    section: String,
    store: TestStore,
    raw: Arc<dyn ObjectStore>,
    /// Baton's environment: the store's settings, then the run's `--baton-env`.
    env: Vec<(String, String)>,
}

fn label(backend: Backend) -> &'static str {
    match backend {
        Backend::S3 => "S3 on moto",
        _ => "Azure Blob on Azurite",
    }
}

pub async fn store_uploads(ctx: &Ctx, report: &mut Report, which: Which) -> anyhow::Result<()> {
    for (index, backend) in Backend::OBJECT_STORES.into_iter().enumerate() {
        // Parts 1 and 2 again, so their sections follow part 2's.
        let section = format!("2{} uploads to {}", ['b', 'c'][index], label(backend));
        step(&format!("{}: starting the emulator", label(backend)));
        let dir = ctx.work.join("emulators").join(backend.name());
        let emulator = tokio::task::spawn_blocking(move || Emulator::start(backend, &dir)).await??;
        let store = emulator.test_store().await?;
        let raw = Arc::clone(store.client().context("an object store has a client")?);
        let mut env = store.baton_env();
        env.extend(ctx.options.baton_env.iter().cloned());
        let on = OnStore {
            ctx,
            backend,
            section,
            store,
            raw,
            env,
        };
        if which.large {
            on.large(report, index as u64).await?;
        }
        if which.medium {
            on.medium(report, index as u64).await?;
        }
        drop(emulator);
    }
    Ok(())
}

impl OnStore<'_> {
    async fn large(&self, report: &mut Report, index: u64) -> anyhow::Result<()> {
        let ctx = self.ctx;
        let size = ctx.scale.large_bytes;
        let size_label = human_bytes(size);
        // Content of its own, so no earlier part's blob stands in for it.
        let tag = ctx.tag ^ (0x5107e + index);
        step(&format!("{}: raw multipart put of {size_label}", label(self.backend)));
        let key = format!("raw/large-{tag:x}");
        let raw = raw_store::multipart_put(&self.raw, &key, size, tag).await?;
        let raw_mb_s = mb_per_s(size, raw);

        step(&format!("{}: Baton, one {size_label} upload", label(self.backend)));
        let baton = ctx
            .start_baton_with(&format!("{}-large", self.backend.name()), &self.env)
            .await?;
        let tap = Tap::start(&ctx.options.amqp_url, &ctx.prefix, &[ctx.queue("benchlarge")]).await?;
        let submitter = Submitter::new(ctx.client.clone(), &baton.base_url);
        let sampler = RssSampler::start(baton.pid());
        let meter = cpu_meter(baton.pid(), Vec::new());
        let submitted = submitter.submit_streamed("benchlarge", size, tag).await;
        let cpu = meter.finish();
        let rss = sampler.finish().await;
        let submitted = submitted.with_context(|| format!("the large upload to {} failed", label(self.backend)))?;
        let upload_mb_s = mb_per_s(size, submitted.latency);

        let section = &self.section;
        report.compare(
            section,
            &format!("upload {size_label} to 202"),
            upload_mb_s,
            "MB/s",
            format!("{} MB/s", num(upload_mb_s)),
            raw_mb_s,
            format!(
                "{} MB/s = raw multipart put ({} MiB parts, {PARTS_IN_FLIGHT} in flight)",
                num(raw_mb_s),
                PART_BYTES >> 20
            ),
            None,
        );
        rss_row(report, section, "Baton peak RSS during the upload", &rss);
        cpu_row(
            report,
            section,
            &cpu,
            (size >> 30).max(1) as usize,
            if size >= 1 << 30 { "GiB" } else { "upload" },
        );
        report.detail(
            &format!("large_upload_{}", self.backend.name()),
            serde_json::json!({
                "store": self.store.url,
                "bytes": size,
                "seconds": submitted.latency.as_secs_f64(),
                "mb_s": upload_mb_s,
                "raw_multipart": { "seconds": raw.as_secs_f64(), "mb_s": raw_mb_s,
                                   "part_bytes": PART_BYTES, "parts_in_flight": PARTS_IN_FLIGHT },
                "cpu": cpu,
                "rss": rss,
            }),
        );
        tap.close().await;
        baton.stop().await;
        Ok(())
    }

    async fn medium(&self, report: &mut Report, index: u64) -> anyhow::Result<()> {
        let ctx = self.ctx;
        let clients = ctx.scale.clients;
        let size = 1 << 20;
        let tag = ctx.tag ^ (0x3ed1 + index);
        step(&format!(
            "{}: raw puts of 1 MiB objects, {clients} at once",
            label(self.backend)
        ));
        let raw = raw_store::concurrent_puts(
            &self.raw,
            &format!("raw/medium-{tag:x}"),
            size,
            clients,
            ctx.scale.phase,
            tag,
        )
        .await?;
        let raw_mb_s = mb_per_s(raw.bytes, raw.elapsed);

        step(&format!(
            "{}: Baton, {clients} clients uploading 1 MiB files",
            label(self.backend)
        ));
        let baton = ctx
            .start_baton_with(&format!("{}-medium", self.backend.name()), &self.env)
            .await?;
        let tap = Tap::start(&ctx.options.amqp_url, &ctx.prefix, &[ctx.queue("benchmedium")]).await?;
        let submitter = Submitter::new(ctx.client.clone(), &baton.base_url);
        let spec = JobSpec::new("benchmedium", size, tag);
        // A warm-up round (connections, Postgres pool) on content of its own: its figures are not kept.
        drop(load::closed_loop(&submitter, &spec.slice(0), clients, Stop::Jobs(clients)).await);
        let sampler = RssSampler::start(baton.pid());
        let meter = cpu_meter(baton.pid(), Vec::new());
        let outcome = load::closed_loop(&submitter, &spec.slice(1), clients, Stop::After(ctx.scale.phase)).await;
        let cpu = meter.finish();
        let rss = sampler.finish().await;
        check_errors(&format!("1 MiB uploads to {}", label(self.backend)), &outcome)?;
        let jobs = outcome.submitted.len();
        let jobs_s = per_s(jobs, outcome.elapsed);
        let mb_s = mb_per_s(jobs as u64 * spec.size(), outcome.elapsed);
        let latency = Latency::from_durations(&outcome.latencies());

        let section = &self.section;
        report.info(
            section,
            &format!("1 MiB jobs, {clients} clients"),
            jobs_s,
            "jobs/s",
            format!("{} jobs/s", num(jobs_s)),
        );
        report.compare(
            section,
            "1 MiB jobs: upload rate",
            mb_s,
            "MB/s",
            format!("{} MB/s", num(mb_s)),
            raw_mb_s,
            format!("{} MB/s = raw 1 MiB puts, {clients} at once", num(raw_mb_s)),
            None,
        );
        latency_row(report, section, "submit -> 202", &latency);
        rss_row(report, section, "Baton peak RSS", &rss);
        cpu_row(report, section, &cpu, jobs, "job");
        report.detail(
            &format!("medium_uploads_{}", self.backend.name()),
            serde_json::json!({
                "store": self.store.url,
                "clients": clients, "jobs": jobs, "seconds": outcome.elapsed.as_secs_f64(),
                "jobs_s": jobs_s, "mb_s": mb_s, "submit_to_202": latency,
                "raw_puts": { "objects": raw.objects, "seconds": raw.elapsed.as_secs_f64(), "mb_s": raw_mb_s },
                "cpu": cpu, "rss": rss,
            }),
        );
        tap.close().await;
        baton.stop().await;
        Ok(())
    }
}
