//! RabbitMQ as tests touch it directly: the events queue, raw publishes, and a worker played by
//! hand.

use std::time::Duration;

use baton_testkit::poll::{POLL_INTERVAL, eventually, until_some};
use lapin::{BasicProperties, Connection, ConnectionProperties, options::*};
use uuid::Uuid;

use crate::{TestEnv, amqp_url};

impl TestEnv {
    /// Waits until an app of this environment declared its events queue, so that events
    /// published straight to it are routed.
    pub async fn wait_for_events_queue(&self) {
        wait_until_declared(Declared::Queue(self.events_queue())).await;
    }

    /// Waits until an app of this environment declared its events queue and its control
    /// exchange, so that a worker finds both.
    pub async fn wait_for_worker_topology(&self) {
        self.wait_for_events_queue().await;
        let exchange = baton_protocol::queue::control_exchange(&self.prefix);
        wait_until_declared(Declared::Exchange(exchange)).await;
    }

    /// Publishes a JSON message straight to a queue (as a worker or a hostile peer would).
    pub async fn publish_raw(&self, queue: &str, body: &[u8]) {
        let connection = Connection::connect(&amqp_url(), ConnectionProperties::default())
            .await
            .unwrap();
        let channel = connection.create_channel().await.unwrap();
        // The app declares the events queue as it starts; do not race it.
        baton_protocol::amqp::declare_quorum_queue(&channel, &self.events_queue())
            .await
            .unwrap();
        channel.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
        let confirm = channel
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                body,
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert_eq!(
            confirm,
            lapin::Confirmation::Ack(None),
            "publish to {queue} was not confirmed"
        );
        connection.close(200, "done".into()).await.unwrap();
    }
}

enum Declared {
    Queue(String),
    Exchange(String),
}

/// Polls with passive declarations (up to 20 s) until `what` exists.
async fn wait_until_declared(what: Declared) {
    let connection = Connection::connect(&amqp_url(), ConnectionProperties::default())
        .await
        .unwrap();
    let declared = eventually(Duration::from_secs(20), || async {
        let Ok(channel) = connection.create_channel().await else {
            return false;
        };
        // A failed passive declare closes its channel; each try opens a new one.
        match &what {
            Declared::Queue(name) => {
                let options = QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                };
                let arguments = lapin::types::FieldTable::default();
                channel
                    .queue_declare(name.as_str().into(), options, arguments)
                    .await
                    .is_ok()
            }
            Declared::Exchange(name) => {
                let options = ExchangeDeclareOptions {
                    passive: true,
                    ..Default::default()
                };
                let (kind, arguments) = (lapin::ExchangeKind::Fanout, lapin::types::FieldTable::default());
                channel
                    .exchange_declare(name.as_str().into(), kind, options, arguments)
                    .await
                    .is_ok()
            }
        }
    })
    .await;
    let (Declared::Queue(name) | Declared::Exchange(name)) = &what;
    assert!(declared, "{name} was never declared");
    // Closing races the server's closing of the failed channels; the connection goes anyway.
    connection.close(200, "done".into()).await.ok();
}

/// Declares a job queue exactly as Baton and workers do (a worker would do this before consuming).
pub async fn declare_queue(channel: &lapin::Channel, prefix: &str, queue: &str) {
    baton_protocol::amqp::declare_job_queue(channel, prefix, queue)
        .await
        .expect("declare queue");
}

/// Plays a worker by hand: takes job messages off a queue and sends whatever events a test
/// needs, including ones a well-behaved worker never would.
pub struct ManualWorker {
    connection: Connection,
    channel: lapin::Channel,
    events_queue: String,
    pub id: String,
}

impl ManualWorker {
    pub async fn connect(env: &TestEnv) -> Self {
        let connection = Connection::connect(&amqp_url(), ConnectionProperties::default())
            .await
            .unwrap();
        let channel = connection.create_channel().await.unwrap();
        // Before the job queue, so a message this worker hands back before Baton's dead-letter
        // consumer is up is not dead-lettered to nowhere.
        baton::queue::amqp::declare_dead_letters(&channel, &env.prefix)
            .await
            .unwrap();
        declare_queue(&channel, &env.prefix, &env.job_queue("example")).await;
        // Baton may not have declared it yet: an event published to nowhere would be lost.
        baton_protocol::amqp::declare_quorum_queue(&channel, &env.events_queue())
            .await
            .unwrap();
        channel.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
        Self {
            connection,
            channel,
            events_queue: env.events_queue(),
            id: format!("manual-{}", Uuid::new_v4().simple()),
        }
    }

    /// Waits for the next job message, leaving it unacknowledged.
    pub async fn take(&self, env: &TestEnv) -> (baton_protocol::JobMessage, lapin::message::BasicGetMessage) {
        let queue = env.job_queue("example");
        let message = until_some(Duration::from_secs(20), POLL_INTERVAL, || async {
            self.channel
                .basic_get(queue.as_str().into(), BasicGetOptions::default())
                .await
                .expect("basic.get on the job queue")
        })
        .await
        .expect("no job message arrived");
        let job = serde_json::from_slice(&message.delivery.data).expect("a job message");
        (job, message)
    }

    pub async fn send(&self, job: &baton_protocol::JobMessage, kind: serde_json::Value) {
        let mut event = serde_json::json!({
            "version": 1, "job_id": job.job_id, "attempt": job.attempt, "worker": self.id,
        });
        event.as_object_mut().unwrap().extend(kind.as_object().unwrap().clone());
        let confirm = self
            .channel
            .basic_publish(
                "".into(),
                self.events_queue.as_str().into(),
                BasicPublishOptions::default(),
                event.to_string().as_bytes(),
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(confirm.is_ack());
    }

    /// Drops the connection as a killed process would, handing back unacknowledged messages.
    pub async fn die(self) {
        self.connection.close(320, "killed".into()).await.unwrap();
    }
}
