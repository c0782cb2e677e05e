//! The jobs the clients submit: deterministic contents, some shared between jobs, some large.

use bytes::Bytes;
use serde_json::json;

use crate::load::{FileSpec, JobSpec, Kind};

/// Makes the jobs: deterministic contents, some shared between jobs so that deduplication is
/// exercised, a few large enough to be mid-upload when something dies.
pub struct JobFactory {
    run: String,
    next: usize,
    shared: Vec<Bytes>,
}

impl JobFactory {
    pub fn new() -> Self {
        let run = format!("{:08x}", fastrand::u32(..));
        let shared = (0..16)
            .map(|i| Bytes::from(pseudo_random(1000 + i, 1024 * (1 + (i as usize * 7) % 64))))
            .collect();
        Self { run, next: 0, shared }
    }

    pub fn make(&mut self, phase: usize, kind: Kind) -> JobSpec {
        let seq = self.next;
        self.next += 1;
        let key = format!("fault-{}-{seq:05}", self.run);
        let sleep_ms = match kind {
            Kind::Victim => 4000,
            Kind::Poison => 0,
            _ => fastrand::u64(50..400),
        };
        let mut params = json!({ "sleep_ms": sleep_ms, "seq": seq });
        if kind == Kind::Poison {
            params["crash"] = json!(true);
        }
        let mut files = Vec::new();
        let main = match kind.input_bytes() {
            Some(size) => Bytes::from(pseudo_random(seq as u64, size)),
            None if fastrand::f64() < 0.04 => Bytes::from(pseudo_random(seq as u64, 2 << 20)),
            None if fastrand::bool() => self.shared[fastrand::usize(..self.shared.len())].clone(),
            None => Bytes::from(pseudo_random(seq as u64, fastrand::usize(512..(128 << 10)))),
        };
        files.push(FileSpec {
            name: "input".into(),
            filename: format!("input-{seq}.bin"),
            bytes: main,
        });
        if fastrand::f64() < 0.3 {
            files.push(FileSpec {
                name: "extra".into(),
                filename: "extra.bin".into(),
                bytes: self.shared[fastrand::usize(..self.shared.len())].clone(),
            });
        }
        JobSpec {
            key,
            phase,
            kind,
            params,
            files,
        }
    }
}

/// Deterministic bytes, distinct per seed.
fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(0x2545_f491_4f6c_dd1d)
        | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}
