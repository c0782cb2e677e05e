//! Part 1: one large upload against the disk and single-core hashing.

use anyhow::Context;

use crate::{
    Ctx, limits,
    load::Submitter,
    report::{Report, Target, num},
    rows::{cpu_meter, cpu_row, human_bytes, rss_row},
    rss::RssSampler,
    stats::mb_per_s,
    step,
    tap::Tap,
};

/// Part 1, one large file: MB/s next to a plain write with fdatasync and single-core hashing.
/// Returns min(disk write, MD5) in MB/s.
pub async fn large_upload(ctx: &Ctx, report: &mut Report) -> anyhow::Result<f64> {
    let section = "1 large upload";
    let size = ctx.scale.large_bytes;
    let size_label = human_bytes(size);

    step("single-core MD5 and SHA-256");
    let hash_bytes = ctx.scale.hash_bytes;
    let hashes = tokio::task::spawn_blocking(move || limits::hash_speeds(hash_bytes)).await?;

    step(&format!("sequential write of {size_label} + fdatasync"));
    let dir = ctx.storage.join("tmp");
    let disk = tokio::task::spawn_blocking(move || limits::sequential_write(&dir, size)).await??;

    step(&format!("Baton: one {size_label} upload"));
    let baton = ctx.start_baton("1").await?;
    let tap = Tap::start(&ctx.options.amqp_url, &ctx.prefix, &[ctx.queue("benchlarge")]).await?;
    let submitter = Submitter::new(ctx.client.clone(), &baton.base_url);
    let sampler = RssSampler::start(baton.pid());
    let meter = cpu_meter(baton.pid(), Vec::new());
    let submitted = submitter.submit_streamed("benchlarge", size, ctx.tag).await;
    let cpu = meter.finish();
    let rss = sampler.finish().await;
    let submitted = submitted.context("the large upload failed")?;
    let upload_mb_s = mb_per_s(size, submitted.latency);

    let limit = disk.mb_s.min(hashes.md5_mb_s);
    report.compare(
        section,
        &format!("upload {size_label} to 202"),
        upload_mb_s,
        "MB/s",
        format!("{} MB/s", num(upload_mb_s)),
        limit,
        format!("{} MB/s = min(disk write, MD5)", num(limit)),
        Some(Target::AtLeast(0.8)),
    );
    report.info(
        section,
        &format!("plain write {size_label} + fdatasync"),
        disk.mb_s,
        "MB/s",
        format!("{} MB/s", num(disk.mb_s)),
    );
    report.info(
        section,
        "MD5, one core",
        hashes.md5_mb_s,
        "MB/s",
        format!("{} MB/s", num(hashes.md5_mb_s)),
    );
    report.info(
        section,
        "SHA-256, one core",
        hashes.sha256_mb_s,
        "MB/s",
        format!("{} MB/s", num(hashes.sha256_mb_s)),
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
        "large_upload",
        serde_json::json!({
            "cpu": cpu,
            "bytes": size,
            "seconds": submitted.latency.as_secs_f64(),
            "mb_s": upload_mb_s,
            "disk_write": disk,
            "hashes": hashes,
            "rss": rss,
        }),
    );
    tap.close().await;
    baton.stop().await;
    Ok(limit)
}
