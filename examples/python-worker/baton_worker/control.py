"""Control messages: Baton asking workers, through the `{prefix}control` fanout exchange, to stop
an attempt. Every worker process receives every message and acts only on attempts it runs."""

from __future__ import annotations

import collections
import json
import logging
import uuid
from typing import Callable

from .queues import ensure_control_exchange

log = logging.getLogger("baton-worker")

# How many cancelled attempts are remembered, so that a delivery of one arriving after Baton
# asked to stop it is not run at all.
CANCEL_MEMORY = 10_000


def subscribe(connection, exchange: str, on_message: Callable):
    """A private queue bound to the control fanout exchange; it lives as long as `connection`.
    Control messages are hints, consumed without acks. Returns the channel."""
    # Declared by Baton: checked passively (no permission needed), declared only if missing.
    ensure_control_exchange(connection, exchange)
    channel = connection.channel()
    private = channel.queue_declare("", exclusive=True, auto_delete=True).method.queue
    channel.queue_bind(private, exchange)
    channel.basic_consume(private, on_message_callback=on_message, auto_ack=True)
    return channel


def parse_cancel(body: bytes) -> tuple[tuple[str, int], str] | None:
    """The attempt (`job_id`, `attempt`) a `cancel` names and its reason; None for any other
    message, which is ignored."""
    try:
        message = json.loads(body)
        if message.get("type") != "cancel":
            raise ValueError(f"unknown type {message.get('type')!r}")
        key = (str(uuid.UUID(message["job_id"])), message["attempt"])
        if isinstance(key[1], bool) or not isinstance(key[1], int):
            raise ValueError("attempt is not an integer")
        reason = str(message.get("reason", ""))
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        # Forward compatibility: later versions may add control messages.
        log.debug("ignoring a control message: %s", e)
        return None
    return key, reason


class CancelledAttempts:
    """The attempts Baton asked to stop, the most recent `limit` of them."""

    def __init__(self, limit: int = CANCEL_MEMORY):
        self.limit = limit
        self._keys: collections.OrderedDict[tuple[str, int], None] = collections.OrderedDict()

    def __contains__(self, key: tuple[str, int]) -> bool:
        return key in self._keys

    def remember(self, key: tuple[str, int]) -> None:
        self._keys[key] = None
        self._keys.move_to_end(key)
        while len(self._keys) > self.limit:
            self._keys.popitem(last=False)
