"""A RabbitMQ user of one test, made with `rabbitmqctl` on the node the tests use and given exactly
the permissions protocol/README.md documents for a worker ("RabbitMQ users for workers"); deleted
when the test ends, whether it passed or not.

`rabbitmqctl` must reach that node: the tests run on its machine, as root (or as a user that may
run it). BATON_TEST_RABBITMQCTL names another command, e.g. `sudo rabbitmqctl`.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import subprocess
import urllib.parse
import uuid
from dataclasses import dataclass
from typing import Iterator

from harness import AMQP_URL

RABBITMQCTL = shlex.split(os.environ.get("BATON_TEST_RABBITMQCTL", "rabbitmqctl"))


def escape(name: str) -> str:
    """`name` as a regular expression matching exactly it (RabbitMQ's expressions are PCRE)."""
    return re.sub(r"([\\.^$|?*+()\[\]{}])", r"\\\1", name)


def worker_permissions(prefix: str, model: str) -> tuple[str, str, str]:
    """configure, write and read for a worker serving `model` with queue prefix `prefix`."""
    job_queue, server_named = escape(f"{prefix}jobs.{model}"), escape("amq.gen-") + ".*"
    return (
        f"^({job_queue}|{server_named})$",
        f"^({escape(prefix + 'dead-letter')}|{server_named}|{escape('amq.default')})$",
        f"^({job_queue}|{escape(prefix + 'control')}|{server_named})$",
    )


def rabbitmqctl(*args: str) -> None:
    result = subprocess.run([*RABBITMQCTL, "-q", *args], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {args[0]} failed ({result.returncode}): {result.stdout}{result.stderr}")


@dataclass
class WorkerUser:
    name: str
    url: str


@contextlib.contextmanager
def worker_user(prefix: str, model: str) -> Iterator[WorkerUser]:
    """A new user with a unique name, on the vhost of the tests' RabbitMQ URL, allowed what a worker
    of `model` needs and nothing else; deleted on leaving the block."""
    parts = urllib.parse.urlsplit(AMQP_URL)
    vhost = urllib.parse.unquote(parts.path[1:]) or "/"
    name, password = f"baton-pytest-worker-{uuid.uuid4().hex[:12]}", uuid.uuid4().hex
    rabbitmqctl("add_user", name, password)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, name, *worker_permissions(prefix, model))
        netloc = f"{urllib.parse.quote(name, safe='')}:{password}@{parts.netloc.rpartition('@')[2]}"
        yield WorkerUser(name, urllib.parse.urlunsplit(parts._replace(netloc=netloc)))
    finally:
        rabbitmqctl("delete_user", name)
