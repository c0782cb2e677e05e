//! The depth of the run's queues over a phase.

use std::time::Duration;

use lapin::{options::QueueDeclareOptions, types::FieldTable};

use crate::env::amqp_connect;

/// Samples the depth (ready messages) of some queues every 200 ms until stopped; returns the
/// largest depth seen per queue.
pub struct DepthSampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<Vec<(String, u32)>>,
}

impl DepthSampler {
    pub async fn start(url: &str, queues: Vec<String>) -> anyhow::Result<Self> {
        let connection = amqp_connect(url, "baton-bench-depth").await?;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&stop);
        let task = tokio::spawn(async move {
            let mut max = vec![0_u32; queues.len()];
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok(channel) = connection.create_channel().await else {
                    break;
                };
                for (i, queue) in queues.iter().enumerate() {
                    let passive = QueueDeclareOptions {
                        passive: true,
                        ..QueueDeclareOptions::default()
                    };
                    if let Ok(q) = channel
                        .queue_declare(queue.as_str().into(), passive, FieldTable::default())
                        .await
                    {
                        max[i] = max[i].max(q.message_count());
                    }
                }
                // A channel a failed passive declare closed is closed already.
                channel.close(200, "done".into()).await.ok();
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            if let Err(e) = connection.close(200, "done".into()).await {
                eprintln!("  closing the depth sampler's connection: {e}");
            }
            queues.into_iter().zip(max).collect()
        });
        Ok(Self { stop, task })
    }

    pub async fn finish(self) -> Vec<(String, u32)> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.task.await.unwrap_or_default()
    }
}
