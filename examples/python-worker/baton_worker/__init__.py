"""A Baton worker in Python, speaking the protocol described in protocol/README.md.

It consumes `{prefix}jobs.{model}` (declared with exactly the arguments Baton uses), checks every
input file, on its (read-only) mount of the shared volume or fetched from object storage into a
local cache, and runs the model in a thread. While
the model runs it sends a `heartbeat` every `heartbeat_interval_ms` (from the job message: Baton
derives it from its lease) to renew the attempt's lease, and it listens on the `{prefix}control`
fanout exchange for Baton asking it to stop an attempt. It runs an attempt once: a second
delivery of an attempt it is running is acked and dropped without events.
It reports `started` and the outcome to the queue named in the job's `reply_to` property with
publisher confirms, and acks the job once the outcome is confirmed, or earlier, at the ack
deadline, for jobs that run longer than that.

The modules, by responsibility:

    queues         the queue and exchange declarations Baton expects
    config         settings from the environment (the same variables as the Rust runtime)
    messages       the job message: parsing, versions 1 and 2
    job            what a model receives and raises: Job, Input, JobError, Stopped
    inputs         file references resolved to local files and checked
    cache          the local cache of object-stored inputs (LRU bound, single flight)
    fetch          one object fetched into the cache: signed URL or credentials, verified
    example_model  the example model (SHA-256 and text counts, an optional `sleep_ms`)
    events         worker events, published with confirms
    control        cancel messages from the control exchange
    attempts       running attempts and their timers (heartbeats, ack deadline)
    runner         the model thread of one attempt, and the outcome it hands back
    consumer       the main loop: sessions, deliveries, reports, acks, shutdown
    cli            the command line entry (`python worker.py` or `python -m baton_worker`)
"""

from .config import Config, ConfigError
from .consumer import Worker
from .job import Input, Job, JobError, Stopped

__all__ = ["Config", "ConfigError", "Input", "Job", "JobError", "Stopped", "Worker"]
