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
    pub async fn start(amqp_url: &str, queues: &[String]) -> anyhow::Result<Self> {
        let connection = amqp_connect(amqp_url, "baton-bench-tap").await?;
        let received = Arc::new(Mutex::new(HashMap::new()));
        for queue in queues {
            let channel = connection.create_channel().await?;
            channel
                .queue_declare(
                    queue.as_str().into(),
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
                        received
                            .lock()
                            .expect("tap map poisoned")
                            .entry(id)
                            .or_insert(now);
                    }
                    if delivery.ack(BasicAckOptions::default()).await.is_err() {
                        break;
                    }
                }
            });
        }
        Ok(Self {
            connection,
            received,
        })
    }

    pub fn get(&self, id: &Uuid) -> Option<Instant> {
        self.received
            .lock()
            .expect("tap map poisoned")
            .get(id)
            .copied()
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
        let _ = self.connection.close(200, "done".into()).await;
    }
}

fn job_id(body: &[u8]) -> Option<Uuid> {
    #[derive(serde::Deserialize)]
    struct Message {
        job_id: Uuid,
    }
    serde_json::from_slice::<Message>(body)
        .ok()
        .map(|m| m.job_id)
}
