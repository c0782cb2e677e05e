//! The harness Baton's end-to-end tests, benchmark suite and fault suite share, written once:
//! building or locating binaries, launching `baton serve` and other child processes, private
//! Postgres and RabbitMQ instances, databases and queues on the shared services, a TCP gate,
//! polling with a deadline, free ports, a plain HTTP GET and a volume's file listing.
//!
//! Dev-only: nothing in Baton itself depends on it.

pub mod amqp;
pub mod cargo;
pub mod database;
pub mod files;
pub mod gate;
pub mod http;
pub mod launcher;
pub mod object_stores;
pub mod poll;
pub mod ports;
pub mod private_postgres;
pub mod private_rabbitmq;
pub mod process;

pub use gate::TcpGate;
pub use launcher::BatonProcess;
pub use poll::{eventually, wait_until};
pub use ports::{free_port, port_open};
