"""The main loop: consume → started → run (in a thread, with heartbeats) → outcome with confirm →
ack, reconnecting after failures, and a graceful stop on a signal."""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any

import pika
import pika.exceptions

from . import control, events, runner
from .attempts import Attempt, seconds_until_next_timer
from .cache import ObjectCache
from .config import Config
from .events import EventPublisher, ReportFailed
from .fetch import CredentialsSource, signed_url_source
from .inputs import expiring
from .messages import MalformedMessage, UnsupportedVersion, parse_job
from .queues import AccessRefused, access_refusal, ensure_events_queue, job_queue_arguments

log = logging.getLogger("baton-worker")


class SessionLost(Exception):
    pass


class Worker:
    """All AMQP calls happen on the main thread (pika connections are not thread-safe): it services
    both connections, sends heartbeats and acks on timers, applies control messages, and reports
    the outcomes model threads hand back through a queue."""

    def __init__(self, config: Config, model: runner.Model):
        """Opens the input cache; raises ConfigError when credentials mode cannot work."""
        self.config = config
        self.model = model
        source = CredentialsSource() if config.object_access == "credentials" else signed_url_source
        self.cache = ObjectCache(config.cache_dir, config.cache_max_bytes, source)
        self.stopping = threading.Event()
        self.impatient = threading.Event()  # a second signal: do not wait for running jobs
        self.finished: queue.Queue[tuple[Attempt, dict[str, Any] | None]] = queue.Queue()
        self.running: dict[tuple[str, int], Attempt] = {}
        self.cancelled = control.CancelledAttempts()
        self.session = 0
        self.failures = 0  # consecutive failed sessions, for the reconnection backoff
        self.consume_conn: pika.BlockingConnection | None = None
        self.publish_conn: pika.BlockingConnection | None = None
        self.consume_ch = None
        self.control_ch = None
        self.events: EventPublisher | None = None

    # The signal handler only sets a flag; the main loop notices it within a second.
    def stop(self, signum: int | None = None, _frame: Any = None) -> None:
        if self.stopping.is_set():
            log.warning("second signal: not waiting for running jobs")
            self.impatient.set()
        else:
            log.info("stopping: finishing running jobs")
        self.stopping.set()

    def run(self) -> None:
        """Serves until stopped, reconnecting after failures; raises AccessRefused, without
        reconnecting, when RabbitMQ refuses access (the user's permissions or login)."""
        while not self.stopping.is_set():
            try:
                self._session()
                break
            except (pika.exceptions.AMQPError, ReportFailed, SessionLost, OSError) as e:
                reason = access_refusal(e)
                if reason is not None:
                    raise AccessRefused(
                        f"RabbitMQ refused access ({reason}): the user of BATON_AMQP_URL needs valid credentials "
                        f"and the permissions of a worker of model `{self.config.model}` with queue prefix "
                        f"`{self.config.queue_prefix}` (protocol/README.md, \"RabbitMQ users for workers\")"
                    ) from None
                self.failures += 1
                log.warning("worker session ended (%s: %s); reconnecting", type(e).__name__, e)
            finally:
                self._close()
                self._drop_unacked()
            delay = min(0.2 * 2 ** min(self.failures, 5), 5.0)
            self.stopping.wait(delay)
        log.info("worker stopped")

    # -- connections

    def _connect(self, name: str, **extra: Any) -> pika.BlockingConnection:
        params = pika.URLParameters(self.config.amqp_url)
        params.client_properties = {"connection_name": name}
        params.socket_timeout = 10
        params.connection_attempts = 1
        for key, value in extra.items():
            setattr(params, key, value)
        return pika.BlockingConnection(params)

    def _session(self) -> None:
        self.session += 1
        config = self.config
        # Separate connections: a publisher blocked by a RabbitMQ alarm must not stall acks.
        self.consume_conn = self._connect("baton-py-worker-consume")
        self.publish_conn = self._connect("baton-py-worker-publish", blocked_connection_timeout=30)
        self.consume_ch = self.consume_conn.channel()
        # Per-consumer prefetch: quorum queues do not support global QoS.
        self.consume_ch.basic_qos(prefetch_count=config.prefetch)
        self.consume_ch.queue_declare(
            config.job_queue, durable=True, arguments=job_queue_arguments(config.queue_prefix)
        )
        # Declared by Baton; checked passively (no permission needed) and declared only when
        # Baton never ran, so that `started` is routable.
        ensure_events_queue(self.publish_conn, config.events_queue)
        publish_ch = self.publish_conn.channel()
        self.events = EventPublisher(publish_ch, config.worker_id)
        # Subscribed before consuming jobs, so that no stop request for a job taken is missed.
        self.control_ch = control.subscribe(self.consume_conn, config.control_exchange, self._on_control)
        consumer_tag = self.consume_ch.basic_consume(config.job_queue, on_message_callback=self._on_delivery)
        self.failures = 0
        log.info(
            "worker consuming queue=%s prefetch=%d worker=%s fallback_heartbeat=%gs ack_deadline=%gs",
            config.job_queue,
            config.prefetch,
            config.worker_id,
            config.fallback_heartbeat_interval,
            config.ack_deadline,
        )

        while not self.stopping.is_set():
            self._pump()
        self._shut_down(consumer_tag)

    def _shut_down(self, consumer_tag: str) -> None:
        """Graceful stop: take no more jobs, let running ones report (heartbeats and control
        messages still flow meanwhile), then leave. Anything not acked by then goes back to Baton
        through the dead-letter exchange when the channel closes, and is retried."""
        self.consume_ch.basic_cancel(consumer_tag)
        deadline = time.monotonic() + self.config.shutdown_timeout
        while self.running and time.monotonic() < deadline and not self.impatient.is_set():
            self._pump(cap=0.2)
        if self.running:
            log.warning("%d running job(s) did not finish in time; Baton will retry them", len(self.running))
        for attempt in list(self.running.values()):
            attempt.cancel.set()
            if attempt.acked:
                # Acked at the ack deadline: nothing goes back to Baton when the channel closes,
                # so say the attempt is over rather than leave Baton waiting for its lease to run
                # out. Unacked ones are dead-lettered to Baton (`worker_lost`) on close.
                event = events.failed("worker_stopped", "the worker stopped before the job finished", retryable=True)
                try:
                    self.events.publish(attempt.reply_to, attempt.job_id, attempt.attempt, event)
                    del self.running[attempt.key]
                except ReportFailed as e:
                    log.warning("job %s attempt %d: could not report the stop (%s)", *attempt.key, e)

    def _close(self) -> None:
        for conn in (self.consume_conn, self.publish_conn):
            if conn is not None and conn.is_open:
                try:
                    conn.close()
                except Exception as e:  # closing is best effort
                    log.debug("closing a connection failed: %s", e)
        self.consume_conn = self.publish_conn = None
        self.consume_ch = self.control_ch = self.events = None

    def _drop_unacked(self) -> None:
        """After a session ends: unacked job messages went back to RabbitMQ with the channel, and
        from there to Baton, which retries them; running them on is wasted work. Attempts already
        acked (past the ack deadline) are still ours: they keep running, heartbeats resume on the
        next connection and their outcome is reported there."""
        for key, attempt in list(self.running.items()):
            if not attempt.acked:
                del self.running[key]
                attempt.cancel.set()
                log.warning("job %s attempt %d went back to Baton with the connection; stopping it", *key)

    # -- the main loop

    def _pump(self, cap: float = 1.0) -> None:
        """One turn of the main loop: wait for AMQP traffic (at most until the next timer), then
        report finished jobs and fire due heartbeats and ack deadlines."""
        if self.finished.empty():
            wait = seconds_until_next_timer(self.running.values(), self.config.ack_deadline, cap)
        else:
            wait = 0  # an outcome waits to be reported
        self.consume_conn.process_data_events(time_limit=wait)
        self.publish_conn.process_data_events(time_limit=0)
        for name, channel in (("job", self.consume_ch), ("control", self.control_ch), ("event", self.events)):
            if not channel.is_open:
                raise SessionLost(f"the {name} channel closed")
        self._collect_finished()
        self._report_outcomes()
        self._timers()

    def _timers(self) -> None:
        now = time.monotonic()
        for attempt in list(self.running.values()):
            if attempt.ack_due(now, self.config.ack_deadline):
                # Holding the message longer would run into RabbitMQ's consumer timeout, which
                # closes the channel. From now on the lease, renewed by heartbeats, is what tells
                # Baton the attempt is alive.
                log.info(
                    "job %s attempt %d still running at the ack deadline: acked early, the lease guards it now",
                    *attempt.key,
                )
                self._ack(attempt)
            if attempt.heartbeat_due(now):
                try:
                    self.events.publish(attempt.reply_to, attempt.job_id, attempt.attempt, events.HEARTBEAT)
                    log.debug("job %s attempt %d heartbeat", *attempt.key)
                except ReportFailed as e:
                    # The lease outlasts several heartbeats: try again at the next one.
                    log.warning("job %s attempt %d: heartbeat not confirmed (%s)", *attempt.key, e)
                    if not self.events.is_open:
                        raise

    def _ack(self, attempt: Attempt) -> None:
        if attempt.acked:
            return
        if attempt.session != self.session:
            # Cannot happen: unacked attempts do not outlive their session.
            return
        self.consume_ch.basic_ack(attempt.delivery_tag)
        attempt.acked = True

    # -- deliveries

    def _on_delivery(self, channel, method, properties, body: bytes) -> None:
        tag = method.delivery_tag
        # Baton always sets reply_to; `{prefix}events` is only a fallback.
        reply_to = properties.reply_to or self.config.events_queue
        try:
            job = parse_job(body)
        except UnsupportedVersion as e:
            log.error("job %s attempt %d: %s; failing it", e.job_id, e.attempt, e)
            try:
                self.events.publish(reply_to, e.job_id, e.attempt, events.failed("unsupported_version", str(e), False))
            except ReportFailed as failure:
                log.warning("could not report job %s (%s); handing it back", e.job_id, failure)
                channel.basic_nack(tag, requeue=True)
                raise
            channel.basic_ack(tag)
            return
        except MalformedMessage as e:
            # Dead-lettered to Baton, which logs and drops it.
            log.error("rejecting a malformed job message: %s", e)
            channel.basic_reject(tag, requeue=False)
            return

        key = (job.job_id, job.attempt)
        if key in self.cancelled:
            log.info("job %s attempt %d was already stopped by Baton; skipping it", *key)
            channel.basic_ack(tag)
            return
        if key in self.running:
            # Another delivery of an attempt this worker is running (Baton may publish an attempt
            # again): the first one runs on and reports. Acked, not given back: a copy of a running
            # attempt returned to Baton would end that attempt as `worker_lost`.
            log.info("job %s attempt %d is already running here; dropping the duplicate", *key)
            channel.basic_ack(tag)
            return

        if self.config.object_access == "signed-url":
            stale = expiring(job.files)
            if stale is not None:
                # Given back unstarted, the attempt is published again with fresh URLs, at no
                # cost to its budget; started, it would fail for nothing.
                log.warning(
                    "job %s attempt %d: the signed URL of input %r has expired or is about to; handing the job back",
                    *key,
                    stale.name,
                )
                channel.basic_nack(tag, requeue=True)
                return

        interval = job.heartbeat_interval(self.config.fallback_heartbeat_interval)
        log.info("job %s attempt %d received; heartbeat every %d ms", *key, round(interval * 1000))
        try:
            self.events.publish(reply_to, job.job_id, job.attempt, events.STARTED)
        except ReportFailed as e:
            # Unstarted: Baton publishes the same attempt again, with backoff.
            log.warning("could not report the start of job %s (%s); handing it back", job.job_id, e)
            channel.basic_nack(tag, requeue=True)
            raise

        now = time.monotonic()
        attempt = Attempt(
            job_id=job.job_id,
            attempt=job.attempt,
            reply_to=reply_to,
            session=self.session,
            delivery_tag=tag,
            received=now,
            heartbeat_interval=interval,
            next_heartbeat=now + interval,
        )
        self.running[key] = attempt
        runner.start(attempt, job, self.model, self.config.storage_dir, self.cache, self._on_finished)

    def _on_control(self, channel, method, properties, body: bytes) -> None:
        cancel = control.parse_cancel(body)
        if cancel is None:
            return
        key, reason = cancel
        self.cancelled.remember(key)
        attempt = self.running.pop(key, None)
        if attempt is None:
            return
        attempt.cancel.set()
        # Nothing to report: Baton has already ended the attempt. The ack settles the message.
        self._ack(attempt)
        log.info("job %s attempt %d: Baton asked to stop it (%s); stopped, no outcome reported", *key, reason)

    # -- outcomes

    def _on_finished(self, attempt: Attempt, event: dict[str, Any] | None) -> None:
        """Called from a model thread."""
        self.finished.put((attempt, event))
        conn = self.consume_conn
        if conn is not None:
            try:
                conn.add_callback_threadsafe(lambda: None)  # wake the main loop
            except Exception:
                pass  # the main loop polls anyway

    def _collect_finished(self) -> None:
        while True:
            try:
                attempt, event = self.finished.get_nowait()
            except queue.Empty:
                return
            if self.running.get(attempt.key) is not attempt:
                # Stopped on Baton's request, or its message went back with a closed connection.
                log.info("job %s attempt %d: the model stopped; its outcome is discarded", *attempt.key)
                continue
            attempt.outcome = event

    def _report_outcomes(self) -> None:
        for attempt in list(self.running.values()):
            if attempt.outcome is None:
                continue
            try:
                self.events.publish(attempt.reply_to, attempt.job_id, attempt.attempt, attempt.outcome)
            except ReportFailed as e:
                if not attempt.acked:
                    # Handed back: Baton sees the running attempt's message dead-lettered and
                    # retries the job.
                    log.warning("could not report the outcome of job %s (%s); handing it back", attempt.job_id, e)
                    del self.running[attempt.key]
                    try:
                        self.consume_ch.basic_nack(attempt.delivery_tag, requeue=True)
                    except pika.exceptions.AMQPError as nack_error:
                        log.warning("nack failed (%s); the closing channel hands it back", nack_error)
                else:
                    log.warning(
                        "could not report the outcome of job %s (%s); trying again after reconnecting",
                        attempt.job_id,
                        e,
                    )
                raise
            del self.running[attempt.key]
            # Ack only once Baton's queue holds the outcome.
            self._ack(attempt)
