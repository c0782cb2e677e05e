"""The command line entry: logging from `BATON_LOG`, configuration from the environment, the
example model, and SIGTERM or ctrl-c for a graceful stop (a second signal stops waiting). Exits
with status 2 on invalid configuration and 1 when RabbitMQ refuses access."""

from __future__ import annotations

import logging
import os
import signal
import sys

from .config import Config, ConfigError
from .consumer import Worker
from .example_model import example_model
from .queues import AccessRefused

log = logging.getLogger("baton-worker")


def main() -> int:
    level = os.environ.get("BATON_LOG", "info").upper()
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("pika").setLevel(logging.WARNING)
    try:
        config = Config.from_env()
        worker = Worker(config, example_model)
    except ConfigError as e:
        log.error("%s", e)
        return 2
    except OSError as e:
        log.error("cannot open the input cache BATON_CACHE_DIR: %s", e)
        return 2
    signal.signal(signal.SIGTERM, worker.stop)
    signal.signal(signal.SIGINT, worker.stop)
    try:
        worker.run()
    except AccessRefused as e:
        log.error("%s", e)
        return 1
    return 0
