"""The queue and exchange declarations a worker shares with Baton."""

from __future__ import annotations

from typing import Any


def job_queue_arguments(prefix: str) -> dict[str, Any]:
    """The arguments of every job queue, exactly as Baton declares them
    (`baton_protocol::queue::job_queue_arguments`). RabbitMQ refuses (PRECONDITION_FAILED) a
    declaration whose arguments differ. With `x-delivery-limit` 0 every message returned to the
    queue (a crash, a nack, a reject, a closed channel) is dead-lettered to Baton, which decides
    whether to run the job again; RabbitMQ never redelivers a job by itself."""
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": 0,
        "x-dead-letter-exchange": f"{prefix}dead-letter",
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


# The events queue is a plain durable quorum queue.
EVENTS_QUEUE_ARGUMENTS = {"x-queue-type": "quorum"}
