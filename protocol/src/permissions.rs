//! The RabbitMQ permissions a worker needs, and no more: the three regular expressions of
//! `rabbitmqctl set_permissions -p VHOST USER CONFIGURE WRITE READ` for a user that serves one
//! model. `protocol/README.md` (RabbitMQ users for workers) explains each part.
//!
//! RabbitMQ matches each expression against the name of the queue or exchange an operation
//! touches. Every expression here is anchored at both ends and escapes the prefix and the model,
//! so that `.` in `baton.` matches only a dot and model `example` does not also grant
//! `example.v2`.

/// The prefix of the names RabbitMQ gives server-named queues, such as a worker's private
/// control queue (`amq.gen-JzTY20BRgKO-HjmUJj0wLg`). Clients cannot declare such names
/// themselves, so permission on them covers only queues the server named.
pub const SERVER_NAMED_QUEUE_PREFIX: &str = "amq.gen-";

/// The name under which RabbitMQ checks publishes to the default exchange (`""`).
pub const DEFAULT_EXCHANGE: &str = "amq.default";

/// The permissions of a worker user for one model, as `rabbitmqctl set_permissions` takes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerPermissions {
    /// Declaring (and deleting): the model's job queue and the worker's private control queue.
    pub configure: String,
    /// Publishing and binding a queue: the default exchange (events go through it to the queue
    /// in `reply_to`), the private control queue (bound to the control exchange), and the
    /// dead-letter exchange (named by the job queue's arguments when the worker creates it).
    pub write: String,
    /// Consuming and binding from an exchange: the model's job queue, the control exchange and
    /// the private control queue.
    pub read: String,
}

/// The permissions a worker serving `model` needs, for queue prefix `prefix`
/// (`BATON_QUEUE_PREFIX`). For `baton.` and `example`:
///
/// - configure `^(baton\.jobs\.example|amq\.gen-.*)$`
/// - write `^(baton\.dead-letter|amq\.gen-.*|amq\.default)$`
/// - read `^(baton\.jobs\.example|baton\.control|amq\.gen-.*)$`
pub fn worker_permissions(prefix: &str, model: &str) -> WorkerPermissions {
    let job_queue = escape(&crate::queue::job_queue(prefix, model));
    let server_named = format!("{}.*", escape(SERVER_NAMED_QUEUE_PREFIX));
    let dead_letter = escape(&crate::queue::dead_letter_exchange(prefix));
    let control = escape(&crate::queue::control_exchange(prefix));
    let default_exchange = escape(DEFAULT_EXCHANGE);
    let any_of = |names: &[&str]| format!("^({})$", names.join("|"));
    WorkerPermissions {
        configure: any_of(&[&job_queue, &server_named]),
        write: any_of(&[&dead_letter, &server_named, &default_exchange]),
        read: any_of(&[&job_queue, &control, &server_named]),
    }
}

/// `name` as a regular expression that matches exactly it: every character with a meaning in
/// RabbitMQ's (PCRE) expressions is escaped with a backslash.
pub fn escape(name: &str) -> String {
    let mut escaped = String::with_capacity(name.len() + 8);
    for c in name.chars() {
        if "\\.^$|?*+()[]{}".contains(c) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_of_the_default_prefix_gets_its_own_queue_and_the_shared_names() {
        let permissions = worker_permissions("baton.", "example");
        assert_eq!(permissions.configure, r"^(baton\.jobs\.example|amq\.gen-.*)$");
        assert_eq!(permissions.write, r"^(baton\.dead-letter|amq\.gen-.*|amq\.default)$");
        assert_eq!(permissions.read, r"^(baton\.jobs\.example|baton\.control|amq\.gen-.*)$");
    }

    #[test]
    fn prefixes_and_models_are_escaped() {
        let permissions = worker_permissions("acme+1.", "whisper.v3");
        assert_eq!(permissions.configure, r"^(acme\+1\.jobs\.whisper\.v3|amq\.gen-.*)$");
        assert_eq!(escape(r"a-b_c.d\e"), r"a-b_c\.d\\e");
    }

    #[test]
    fn the_documented_commands_are_the_ones_computed_here() {
        let readme = include_str!("../README.md");
        let permissions = worker_permissions("baton.", "example");
        let command = format!(
            "rabbitmqctl set_permissions -p baton baton-worker-example \\\n    '{}' \\\n    '{}' \\\n    '{}'",
            permissions.configure, permissions.write, permissions.read
        );
        assert!(readme.contains(&command), "protocol/README.md should show:\n{command}");
    }
}
