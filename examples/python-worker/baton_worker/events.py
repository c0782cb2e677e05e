"""Worker events: `started`, `heartbeat`, `succeeded` and `failed`, published to the queue named in
the job message's `reply_to`, persistent and mandatory, each confirmed before the worker moves on."""

from __future__ import annotations

import json
from typing import Any

import pika
import pika.exceptions

from .messages import PROTOCOL_VERSION

STARTED = {"type": "started"}
HEARTBEAT = {"type": "heartbeat"}


class ReportFailed(Exception):
    """RabbitMQ did not confirm an event: its queue does not exist, it was nacked, or the channel
    failed."""


def succeeded(result: Any) -> dict[str, Any]:
    return {"type": "succeeded", "result": result}


def failed(code: str, message: str, retryable: bool) -> dict[str, Any]:
    return {"type": "failed", "error": {"code": code, "message": message}, "retryable": retryable}


class EventPublisher:
    """Publishes events on one channel, in confirm mode, as one worker identity."""

    def __init__(self, channel, worker_id: str):
        self.channel = channel
        self.worker_id = worker_id
        self.channel.confirm_delivery()

    @property
    def is_open(self) -> bool:
        return self.channel.is_open

    def publish(self, reply_to: str, job_id: str, attempt: int, kind: dict[str, Any]) -> None:
        event = {
            "version": PROTOCOL_VERSION,
            "job_id": job_id,
            "attempt": attempt,
            "worker": self.worker_id,
            **kind,
        }
        body = json.dumps(event, separators=(",", ":"), allow_nan=False).encode()
        try:
            # With confirm_delivery() this blocks until RabbitMQ confirms and raises if the
            # message was returned (mandatory, no such queue) or nacked.
            self.channel.basic_publish(
                exchange="",
                routing_key=reply_to,
                body=body,
                properties=pika.BasicProperties(
                    content_type="application/json", delivery_mode=pika.DeliveryMode.Persistent
                ),
                mandatory=True,
            )
        except pika.exceptions.UnroutableError:
            raise ReportFailed(f"event queue {reply_to!r} does not exist") from None
        except pika.exceptions.NackError:
            raise ReportFailed("RabbitMQ did not accept the event") from None
        except pika.exceptions.AMQPError as e:
            raise ReportFailed(f"{type(e).__name__}: {e}") from e
