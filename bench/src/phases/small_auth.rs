//! Part 3, small jobs: what authentication costs. The same 4 KiB submissions go to a Baton with
//! `BATON_AUTH=off` and to one with it on, where every request carries a real API key: a submit
//! key of the `default` owner made with `baton keys create`, so that both Batons write into the
//! same owner's blob tree and read the same quota row, and differ only in authenticating.
//!
//! The two Batons run side by side, alike but for `BATON_AUTH`, and are loaded in alternating
//! slices (off then on, then on then off, ...) so that the volume's drift hits both alike and
//! neither always goes first. Side by side rather than one Baton restarted between slices: a
//! restart takes seconds and hands the next slice a cold connection pool and key cache, which
//! would measure the restart. The Baton not being loaded idles, its background services polling
//! as they would anyway, whichever of the two it is.

use std::time::Duration;

use serde_json::json;

use crate::{
    Ctx,
    cpu::{CpuUse, Who},
    env::Baton,
    load::{self, JobSpec, LoopOutcome, Stop, Submitter},
    report::{Report, Target, num},
    rows::{check_errors, cpu_meter},
    stats::{Latency, per_s},
    step,
    tap::Tap,
};

/// The budget: with authentication on, Baton keeps at least 95% of its small-job rate.
pub const MIN_RATIO: f64 = 0.95;

/// Small-job submissions with authentication off and on, from interleaved slices.
pub struct AuthCost {
    off: Side,
    on: Side,
    slice: Duration,
}

/// One Baton's share of the slices.
#[derive(Default)]
struct Side {
    outcome: LoopOutcome,
    cpu: Vec<CpuUse>,
    slice_rates: Vec<f64>,
}

impl Side {
    fn rate(&self) -> f64 {
        per_s(self.outcome.submitted.len(), self.outcome.elapsed)
    }

    fn cpu(&self) -> CpuUse {
        CpuUse::sum(&self.cpu)
    }

    /// CPU milliseconds per job of the Baton under load.
    fn baton_cpu_ms(&self) -> f64 {
        self.cpu()
            .per(self.outcome.submitted.len())
            .get("baton")
            .copied()
            .unwrap_or(f64::NAN)
    }

    fn range(&self) -> String {
        let (lo, hi) = self
            .slice_rates
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
                (lo.min(*x), hi.max(*x))
            });
        format!("slices {}..{}", num(lo), num(hi))
    }

    fn detail(&self) -> serde_json::Value {
        let jobs = self.outcome.submitted.len();
        let cpu = self.cpu();
        json!({
            "jobs": jobs,
            "seconds": self.outcome.elapsed.as_secs_f64(),
            "jobs_s": self.rate(),
            "slice_jobs_s": self.slice_rates,
            "submit_to_202": Latency::from_durations(&self.outcome.latencies()),
            "cpu_ms_per_job": cpu.per(jobs),
            "cpu": cpu,
        })
    }
}

/// Starts the two Batons, makes the key, and loads them in turn.
pub async fn measure(ctx: &Ctx, tap: &Tap) -> anyhow::Result<AuthCost> {
    let clients = ctx.scale.clients;
    let (rounds, slice) = (ctx.scale.auth_rounds, ctx.scale.auth_slice);
    let with_auth = |mode: &str| {
        let mut env = ctx.options.baton_env.clone();
        env.push(("BATON_AUTH".to_owned(), mode.to_owned()));
        env
    };
    step("two Batons alike but for BATON_AUTH (off, on) and a submit key made with `baton keys create`");
    let off = ctx.start_baton_with("3-auth-off", &with_auth("off")).await?;
    let on = ctx.start_baton_with("3-auth-on", &with_auth("on")).await?;
    let token = on
        .run(&[
            "keys",
            "create",
            "--owner",
            "default",
            "--role",
            "submit",
            "--name",
            "baton-bench",
        ])
        .await?;
    anyhow::ensure!(token.starts_with("baton_"), "`baton keys create` printed no key");

    let spec = JobSpec::new("benchsmall", 4096, ctx.tag ^ 0x3a);
    let refused = Submitter::new(ctx.client.clone(), &on.base_url)
        .submit(&spec.model, spec.content(u64::MAX), std::time::Instant::now())
        .await;
    match refused {
        Err(e) if e.to_string().starts_with("401") => {}
        other => anyhow::bail!(
            "the Baton with BATON_AUTH=on took a job without a key: {:?}",
            other.map(|s| s.id)
        ),
    }

    let batons: [(&str, &Baton, Submitter); 2] = [
        ("off", &off, Submitter::new(ctx.client.clone(), &off.base_url)),
        (
            "on",
            &on,
            Submitter::new(ctx.client.clone(), &on.base_url).with_bearer(&token),
        ),
    ];
    let mut sides = [Side::default(), Side::default()];
    let mut slices = (0_u64..).map(|i| spec.slice(i));
    for (name, _, submitter) in &batons {
        let spec = slices.next().expect("endless");
        let warm = load::closed_loop(submitter, &spec, clients, Stop::Jobs(clients)).await;
        check_errors(&format!("4 KiB warm-up, authentication {name}"), &warm)?;
        tap.wait_for(&warm.ids(), Duration::from_secs(10)).await;
    }
    for round in 1..=rounds {
        let order = if round % 2 == 1 { [0, 1] } else { [1, 0] };
        step(&format!(
            "round {round}/{rounds}: Baton with authentication {} then {}, {clients} clients submitting 4 KiB jobs",
            batons[order[0]].0, batons[order[1]].0
        ));
        for i in order {
            let (name, baton, submitter) = &batons[i];
            let idle = batons[1 - i].1.pid();
            let meter = cpu_meter(baton.pid(), vec![("idle baton".to_owned(), vec![Who::Pid(idle)])]);
            let spec = slices.next().expect("endless");
            let outcome = load::closed_loop(submitter, &spec, clients, Stop::After(slice)).await;
            let cpu = meter.finish();
            check_errors(&format!("4 KiB jobs, authentication {name}"), &outcome)?;
            // Let the dispatchers catch up so that the next slice starts on a quiet machine.
            tap.wait_for(&outcome.ids(), Duration::from_secs(30)).await;
            let side = &mut sides[i];
            side.slice_rates.push(per_s(outcome.submitted.len(), outcome.elapsed));
            side.cpu.push(cpu);
            side.outcome.merge(outcome);
        }
    }
    drop(batons);
    off.stop().await;
    on.stop().await;
    let [off, on] = sides;
    Ok(AuthCost { off, on, slice })
}

impl AuthCost {
    /// Rate with authentication on over the rate with it off.
    pub fn ratio(&self) -> f64 {
        self.on.rate() / self.off.rate()
    }

    pub fn report(&self, report: &mut Report, section: &str, clients: usize) {
        let (off, on) = (self.off.rate(), self.on.rate());
        report.info(
            section,
            &format!("4 KiB jobs, {clients} clients, auth off"),
            off,
            "jobs/s",
            format!("{} jobs/s ({})", num(off), self.off.range()),
        );
        report.compare(
            section,
            &format!("4 KiB jobs, {clients} clients, auth on (API key)"),
            on,
            "jobs/s",
            format!("{} jobs/s ({})", num(on), self.on.range()),
            off,
            format!("{} jobs/s auth off, interleaved", num(off)),
            Some(Target::AtLeast(MIN_RATIO)),
        );
        let (cpu_off, cpu_on) = (self.off.baton_cpu_ms(), self.on.baton_cpu_ms());
        report.compare(
            section,
            "Baton CPU ms per job, auth on",
            cpu_on,
            "ms/job",
            format!("{cpu_on:.3} ms"),
            cpu_off,
            format!("{cpu_off:.3} ms auth off"),
            None,
        );
        report.detail(
            "small_jobs_auth",
            json!({
                "rounds": self.off.slice_rates.len(),
                "slice_seconds": self.slice.as_secs_f64(),
                "clients": clients,
                "ratio_on_off": self.ratio(),
                "min_ratio": MIN_RATIO,
                "off": self.off.detail(),
                "on": self.on.detail(),
            }),
        );
    }
}
