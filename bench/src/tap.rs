//! Stands in for a worker: consumes model queues directly and records when each job's message
//! arrived, keyed by the message body's `job_id`.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::StreamExt;
use lapin::{
    Connection,
    options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions},
    types::FieldTable,
};
use uuid::Uuid;

use crate::env::{amqp_connect, quorum_arguments};

pub struct Tap {
    connection: Connection,
    received: Arc<Mutex<HashMap<Uuid, Instant>>>,
}

impl Tap {
    /// Consumes the job queues `queues` of `prefix`, declared as Baton declares them.
    pub async fn start(amqp_url: &str, prefix: &str, queues: &[String]) -> anyhow::Result<Self> {
        let connection = amqp_connect(amqp_url, "baton-bench-tap").await?;
        let received = Arc::new(Mutex::new(HashMap::new()));
        for queue in queues {
            let channel = connection.create_channel().await?;
            baton_protocol::amqp::declare_job_queue(&channel, prefix, queue).await?;
            channel.basic_qos(2000, BasicQosOptions::default()).await?;
            let mut consumer = channel
                .basic_consume(
                    queue.as_str().into(),
                    "".into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            let received = Arc::clone(&received);
            tokio::spawn(async move {
                // Keep the channel alive as long as the consumer runs.
                let _channel = channel;
                while let Some(Ok(delivery)) = consumer.next().await {
                    let now = Instant::now();
                    if let Some(id) = job_id(&delivery.data) {
                        received.lock().expect("tap map poisoned").entry(id).or_insert(now);
                    }
                    if delivery.ack(BasicAckOptions::default()).await.is_err() {
                        break;
                    }
                }
            });
        }
        Ok(Self { connection, received })
    }

    pub fn get(&self, id: &Uuid) -> Option<Instant> {
        self.received.lock().expect("tap map poisoned").get(id).copied()
    }

    /// Waits until every id has arrived or `timeout` passes; returns how many are missing.
    pub async fn wait_for(&self, ids: &[Uuid], timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let missing = {
                let received = self.received.lock().expect("tap map poisoned");
                ids.iter().filter(|id| !received.contains_key(id)).count()
            };
            if missing == 0 || Instant::now() > deadline {
                return missing;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn close(self) {
        if let Err(e) = self.connection.close(200, "done".into()).await {
            eprintln!("  closing the tap's connection: {e}");
        }
    }
}

fn job_id(body: &[u8]) -> Option<Uuid> {
    #[derive(serde::Deserialize)]
    struct Message {
        job_id: Uuid,
    }
    serde_json::from_slice::<Message>(body).ok().map(|m| m.job_id)
}

/// RabbitMQ alone, as a floor for "submit → worker": persistent messages of a job message's
/// size published with confirms to a quorum queue at a fixed rate (open loop), consumed by a
/// consumer on another connection. Returns (publish → delivered, publish → confirmed).
pub async fn amqp_floor(
    amqp_url: &str,
    queue: &str,
    rate: f64,
    duration: Duration,
) -> anyhow::Result<(crate::stats::Latency, crate::stats::Latency)> {
    use lapin::{
        BasicProperties,
        options::{BasicPublishOptions, ConfirmSelectOptions},
    };
    let consuming = amqp_connect(amqp_url, "baton-bench-floor-consume").await?;
    let publishing = amqp_connect(amqp_url, "baton-bench-floor-publish").await?;
    let channel = consuming.create_channel().await?;
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            quorum_arguments(),
        )
        .await?;
    channel.basic_qos(2000, BasicQosOptions::default()).await?;
    let mut consumer = channel
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let received = Arc::new(Mutex::new(HashMap::<u64, Instant>::new()));
    let sink = Arc::clone(&received);
    let consume = tokio::spawn(async move {
        while let Some(Ok(delivery)) = consumer.next().await {
            let now = Instant::now();
            if let Some(n) = delivery.data.get(..8).and_then(|b| b.try_into().ok()) {
                sink.lock().expect("poisoned").insert(u64::from_le_bytes(n), now);
            }
            if delivery.ack(BasicAckOptions::default()).await.is_err() {
                break;
            }
        }
    });

    let publisher = publishing.create_channel().await?;
    publisher.confirm_select(ConfirmSelectOptions::default()).await?;
    let total = (rate * duration.as_secs_f64()).round().max(1.0) as u64;
    let started = Instant::now();
    let mut sent = Vec::with_capacity(total as usize);
    let mut confirms = Vec::with_capacity(total as usize);
    for n in 0..total {
        let due = started + Duration::from_secs_f64(n as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        // About the size of a job message with one file reference.
        let mut body = vec![b' '; 600];
        body[..8].copy_from_slice(&n.to_le_bytes());
        let publisher = publisher.clone();
        let queue = queue.to_owned();
        sent.push((n, due));
        confirms.push(tokio::spawn(async move {
            let confirm = publisher
                .basic_publish(
                    "".into(),
                    queue.as_str().into(),
                    BasicPublishOptions::default(),
                    &body,
                    BasicProperties::default().with_delivery_mode(2),
                )
                .await?
                .await?;
            Ok::<_, lapin::Error>((confirm.is_ack(), due.elapsed()))
        }));
    }
    let mut confirmed = Vec::with_capacity(confirms.len());
    for confirm in confirms {
        if let Ok(Ok((true, latency))) = confirm.await {
            confirmed.push(latency);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while received.lock().expect("poisoned").len() < sent.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let delivered: Vec<Duration> = {
        let received = received.lock().expect("poisoned");
        sent.iter()
            .filter_map(|(n, due)| received.get(n).map(|at| at.saturating_duration_since(*due)))
            .collect()
    };
    consume.abort();
    for (name, connection) in [("publishing", publishing), ("consuming", consuming)] {
        if let Err(e) = connection.close(200, "done".into()).await {
            eprintln!("  closing the floor's {name} connection: {e}");
        }
    }
    Ok((
        crate::stats::Latency::from_durations(&delivered),
        crate::stats::Latency::from_durations(&confirmed),
    ))
}
