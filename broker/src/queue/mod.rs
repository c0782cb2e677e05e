//! RabbitMQ, the transport: publishing job references (the dispatcher drains the outbox),
//! carrying worker events and dead-lettered job messages to `jobs` (the consumers) and the
//! control messages `jobs` decides back to workers, and finding lost dispatches (the
//! reconciler). Postgres stays the source of truth: RabbitMQ being down delays dispatch, never a
//! submission.

pub mod amqp;
pub mod consumer;
pub mod control;
pub mod dead_letters;
pub mod dispatcher;
pub mod event_consumer;
pub mod message;
pub mod publisher;
pub mod reconciler;

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

/// Whether Baton's RabbitMQ connections are up, for `/readyz` and metrics.
#[derive(Debug, Clone, Default)]
pub struct AmqpHealth {
    publisher: Arc<AtomicBool>,
    consumer: Arc<AtomicBool>,
}

impl AmqpHealth {
    pub fn publisher_connected(&self) -> bool {
        self.publisher.load(Ordering::Relaxed)
    }

    pub fn consumer_connected(&self) -> bool {
        self.consumer.load(Ordering::Relaxed)
    }

    pub(crate) fn set_publisher(&self, up: bool) {
        self.publisher.store(up, Ordering::Relaxed);
    }

    pub(crate) fn set_consumer(&self, up: bool) {
        self.consumer.store(up, Ordering::Relaxed);
    }
}
