"""The queue and exchange declarations a worker shares with Baton, and RabbitMQ refusing access."""

from __future__ import annotations

from typing import Any, Callable

import pika.exceptions


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


def ensure_events_queue(connection, name: str) -> None:
    """Makes sure the events queue Baton declares exists, declaring it only if Baton never ran."""
    _ensure(connection, lambda channel, passive: channel.queue_declare(
        name, passive=passive, durable=True, arguments=None if passive else dict(EVENTS_QUEUE_ARGUMENTS)
    ))


def ensure_control_exchange(connection, name: str) -> None:
    """Makes sure the control exchange Baton declares exists, declaring it only if Baton never ran."""
    _ensure(connection, lambda channel, passive: channel.exchange_declare(
        name, exchange_type="fanout", passive=passive, durable=True
    ))


def _ensure(connection, declare: Callable[[Any, bool], Any]) -> None:
    """A passive declaration first: it needs no RabbitMQ permission, so a least-privilege worker
    can check what Baton declared. Only a missing queue or exchange is declared. If this worker
    may not declare it either, the error is the passive declaration's NOT_FOUND: it is not there
    yet (Baton declares it when it starts), which is worth reconnecting for, unlike a refusal."""
    channel = connection.channel()
    try:
        declare(channel, True)
    except pika.exceptions.ChannelClosedByBroker as missing:
        if missing.reply_code != 404:
            raise
        # The failed passive declaration closed that channel.
        channel = connection.channel()
        try:
            declare(channel, False)
        except pika.exceptions.ChannelClosedByBroker as refused:
            if refused.reply_code == 403:
                raise missing from None
            raise
    channel.close()


class AccessRefused(Exception):
    """RabbitMQ refused access: reconnecting would not change that, so the worker stops."""


def access_refusal(error: BaseException) -> str | None:
    """RabbitMQ's reason if `error` is its refusal of access (ACCESS_REFUSED, 403): the user lacks
    a permission on the queue or exchange the reason names, or its login was refused."""
    if isinstance(error, (pika.exceptions.ChannelClosedByBroker, pika.exceptions.ConnectionClosedByBroker)):
        return error.reply_text if error.reply_code == 403 else None
    if isinstance(error, (pika.exceptions.ProbableAuthenticationError, pika.exceptions.AuthenticationError)):
        return str(error.args[0]) if error.args else str(error)
    return None
