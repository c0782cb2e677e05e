//! A RabbitMQ user of one test, made with `rabbitmqctl` on the node the tests use and given
//! exactly the permissions `protocol/README.md` documents for a worker; deleted when the test
//! ends, whether it passed or not.
//!
//! `rabbitmqctl` must reach that node: the tests run on its machine, as root (or as a user that
//! may run `rabbitmqctl`). `BATON_TEST_RABBITMQCTL` names another command, e.g.
//! `sudo rabbitmqctl` or `rabbitmqctl -n rabbit@host`.

use std::process::Output;

use anyhow::{Context, bail};
use baton_protocol::permissions::worker_permissions;
use lapin::uri::AMQPUri;
use uuid::Uuid;

use crate::amqp_url;

/// A user that exists until this value is dropped.
pub struct WorkerUser {
    pub name: String,
    password: String,
    vhost: String,
}

impl WorkerUser {
    /// A new user with a unique name, on the vhost of the tests' RabbitMQ URL, allowed what a
    /// worker serving `model` with queue prefix `prefix` needs, and nothing else.
    pub async fn create(prefix: &str, model: &str) -> Self {
        let vhost = test_vhost();
        let id = Uuid::new_v4().simple().to_string();
        let user = Self {
            name: format!("baton-test-worker-{}", &id[..12]),
            password: Uuid::new_v4().simple().to_string(),
            vhost,
        };
        let permissions = worker_permissions(prefix, model);
        rabbitmqctl(&["add_user", &user.name, &user.password])
            .await
            .expect("rabbitmqctl add_user");
        // From here on the user exists: dropping `user` (also on a panic) deletes it.
        rabbitmqctl(&[
            "set_permissions",
            "-p",
            &user.vhost,
            &user.name,
            &permissions.configure,
            &permissions.write,
            &permissions.read,
        ])
        .await
        .expect("rabbitmqctl set_permissions");
        user
    }

    /// The tests' RabbitMQ URL with this user's credentials.
    pub fn amqp_url(&self) -> String {
        let mut url = reqwest::Url::parse(&amqp_url()).expect("BATON_TEST_AMQP_URL is a URL");
        url.set_username(&self.name).expect("a URL with a host");
        url.set_password(Some(&self.password)).expect("a URL with a host");
        url.to_string()
    }
}

impl Drop for WorkerUser {
    fn drop(&mut self) {
        // Drop is synchronous: a runtime of its own, on a thread of its own (the test's runtime
        // may be the current-thread one, which must not be blocked from inside).
        let name = self.name.clone();
        let deleted = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("a runtime to delete the user")?
                .block_on(rabbitmqctl(&["delete_user", &name]))
        })
        .join();
        match deleted {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => eprintln!("could not delete RabbitMQ user {}: {e:#}", self.name),
            Err(_) => eprintln!("deleting RabbitMQ user {} panicked", self.name),
        }
    }
}

/// The vhost of the tests' RabbitMQ URL (`/` for `%2f`).
fn test_vhost() -> String {
    amqp_url()
        .parse::<AMQPUri>()
        .expect("BATON_TEST_AMQP_URL is an AMQP URL")
        .vhost
}

/// Runs `rabbitmqctl ARGS` quietly; fails with its output if it fails.
async fn rabbitmqctl(args: &[&str]) -> anyhow::Result<Output> {
    let command = std::env::var("BATON_TEST_RABBITMQCTL").unwrap_or_else(|_| "rabbitmqctl".to_owned());
    let mut words = command.split_whitespace();
    let program = words.next().context("BATON_TEST_RABBITMQCTL is empty")?;
    let output = tokio::process::Command::new(program)
        .args(words)
        .arg("-q")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .with_context(|| format!("running {command} (needed to create RabbitMQ users)"))?;
    if !output.status.success() {
        bail!(
            "{command} {} failed ({}): {}{}",
            args.first().copied().unwrap_or_default(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        );
    }
    Ok(output)
}
