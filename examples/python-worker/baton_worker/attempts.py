"""The attempts a worker runs and their timers: a heartbeat every `heartbeat_interval_ms` of the
job message, which renews the attempt's lease, and the ack deadline, after which a job still
running is acked early (before RabbitMQ's consumer timeout would close the channel) and its lease
alone tells Baton it is alive."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterable


@dataclass(eq=False)
class Attempt:
    """One attempt this worker runs, from its delivery until its outcome is reported or Baton
    asks to stop it."""

    job_id: str
    attempt: int
    reply_to: str
    session: int  # the session whose channel holds the delivery
    delivery_tag: int
    received: float  # time.monotonic() at delivery
    heartbeat_interval: float  # seconds, from the job message
    next_heartbeat: float
    cancel: threading.Event = field(default_factory=threading.Event)
    acked: bool = False
    # The outcome event once the model returned, until it is confirmed.
    outcome: dict[str, Any] | None = None

    @property
    def key(self) -> tuple[str, int]:
        return (self.job_id, self.attempt)

    def ack_due(self, now: float, ack_deadline: float) -> bool:
        return not self.acked and now >= self.received + ack_deadline

    def heartbeat_due(self, now: float) -> bool:
        """True when a heartbeat is due, scheduling the next one."""
        if now < self.next_heartbeat:
            return False
        self.next_heartbeat = now + self.heartbeat_interval
        return True


def seconds_until_next_timer(attempts: Iterable[Attempt], ack_deadline: float, cap: float) -> float:
    """How long the main loop may wait for AMQP traffic: until the next heartbeat or ack deadline,
    at most `cap`, and not at all while an outcome waits to be reported."""
    now = time.monotonic()
    due = now + cap
    for attempt in attempts:
        if attempt.outcome is not None:
            return 0
        due = min(due, attempt.next_heartbeat)
        if not attempt.acked:
            due = min(due, attempt.received + ack_deadline)
    return max(0.0, due - now)
