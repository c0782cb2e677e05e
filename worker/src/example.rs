//! The example model: real work on real inputs, no weights needed.
//!
//! For each input it re-hashes the bytes read from the volume and checks them against the
//! SHA-256 Baton recorded, then: images (PNG, JPEG, GIF, BMP, WebP) are decoded to report
//! dimensions and a colour histogram; text is counted (lines, words, characters); anything else
//! reports its size. The optional parameter `sleep_ms` adds a fixed delay, standing in for
//! inference time.

use std::{
    fs::File,
    io::{BufRead, BufReader, Read},
    time::Duration,
};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{Handler, Input, Job, JobError};

/// Histogram buckets per colour channel.
const BUCKETS: usize = 8;
const READ_BUFFER: usize = 1 << 20;

#[derive(Debug, Clone, Copy, Default)]
pub struct ExampleHandler;

impl Handler for ExampleHandler {
    async fn handle(&self, job: Job) -> Result<Value, JobError> {
        let sleep_ms = job.message.params.get("sleep_ms").and_then(Value::as_u64).unwrap_or(0);
        let inputs = job.inputs;
        let analysed = tokio::task::spawn_blocking(move || inputs.iter().map(analyse).collect::<Result<Vec<_>, _>>())
            .await
            .map_err(|e| JobError::transient("worker_crashed", e.to_string()))??;
        if sleep_ms > 0 {
            tokio::time::sleep(Duration::from_millis(sleep_ms)).await;
        }
        Ok(json!({ "model": "example", "inputs": analysed }))
    }
}

fn analyse(input: &Input) -> Result<Value, JobError> {
    let unreadable = |e: std::io::Error| JobError::transient("input_unreadable", format!("`{}`: {e}", input.file.name));
    let sha256 = sha256_of(input).map_err(unreadable)?;
    if sha256 != input.file.sha256 {
        return Err(JobError::permanent(
            "checksum_mismatch",
            format!("`{}` does not match its recorded SHA-256", input.file.name),
        ));
    }
    let mut report = json!({
        "name": input.file.name,
        "size": input.file.size,
        "content_type": input.file.content_type,
        "sha256_verified": true,
    });
    let details = if input.file.content_type.starts_with("image/") {
        image_report(input)
    } else if is_text(&input.file.content_type) {
        text_report(input).map_err(unreadable)?
    } else {
        json!({ "kind": "binary" })
    };
    if let (Some(report), Value::Object(details)) = (report.as_object_mut(), details) {
        report.extend(details);
    }
    Ok(report)
}

fn is_text(content_type: &str) -> bool {
    content_type.starts_with("text/") || content_type.starts_with("application/json") || content_type.contains("xml")
}

fn sha256_of(input: &Input) -> std::io::Result<String> {
    let mut file = File::open(&input.path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; READ_BUFFER];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

fn image_report(input: &Input) -> Value {
    let decoded = image::ImageReader::open(&input.path)
        .and_then(|reader| reader.with_guessed_format())
        .map_err(|e| e.to_string())
        .and_then(|reader| reader.decode().map_err(|e| e.to_string()));
    let image = match decoded {
        Ok(image) => image.into_rgb8(),
        // The bytes claim to be an image but do not decode: report rather than fail the job.
        Err(e) => return json!({ "kind": "image", "decoded": false, "error": e }),
    };
    let mut histogram = [[0_u64; BUCKETS]; 3];
    for pixel in image.pixels() {
        for (channel, value) in pixel.0.iter().enumerate() {
            histogram[channel][usize::from(*value) * BUCKETS / 256] += 1;
        }
    }
    json!({
        "kind": "image",
        "decoded": true,
        "width": image.width(),
        "height": image.height(),
        "histogram": { "r": histogram[0], "g": histogram[1], "b": histogram[2] },
    })
}

fn text_report(input: &Input) -> std::io::Result<Value> {
    let mut reader = BufReader::with_capacity(READ_BUFFER, File::open(&input.path)?);
    let (mut lines, mut words, mut chars) = (0_u64, 0_u64, 0_u64);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        if line.ends_with(b"\n") {
            lines += 1;
        }
        let text = String::from_utf8_lossy(&line);
        words += text.split_whitespace().count() as u64;
        chars += text.chars().count() as u64;
    }
    Ok(json!({ "kind": "text", "lines": lines, "words": words, "chars": chars }))
}
