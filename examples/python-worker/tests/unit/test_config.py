"""Configuration, durations, worker identities and the queue declarations shared with Baton."""

from __future__ import annotations

import os
import re

import pytest

from baton_worker.config import Config, ConfigError, default_worker_id, parse_bytes, parse_duration
from baton_worker.queues import job_queue_arguments


def test_configuration_follows_the_rust_worker():
    config = Config.from_env({})
    assert (config.model, config.queue_prefix, config.prefetch) == ("example-py", "baton.", 1)
    assert config.job_queue == "baton.jobs.example-py"
    assert config.events_queue == "baton.events"
    assert config.control_exchange == "baton.control"
    assert (config.fallback_heartbeat_interval, config.ack_deadline, config.shutdown_timeout) == (10, 1200, 30)
    tuned = Config.from_env({"BATON_WORKER_HEARTBEAT": "500ms", "BATON_WORKER_ACK_DEADLINE": "2h",
                             "BATON_WORKER_ID": "gpu-3/a"})
    assert (tuned.fallback_heartbeat_interval, tuned.ack_deadline, tuned.worker_id) == (0.5, 7200, "gpu-3/a")
    for bad in [{"BATON_WORKER_MODEL": "Bad"}, {"BATON_WORKER_PREFETCH": "0"},
                {"BATON_WORKER_SHUTDOWN_TIMEOUT": "soon"}, {"BATON_AMQP_URL": "http://x"},
                {"BATON_WORKER_HEARTBEAT": "10"}, {"BATON_WORKER_HEARTBEAT": "0s"},
                {"BATON_WORKER_ACK_DEADLINE": "1d"}]:
        with pytest.raises(ConfigError):
            Config.from_env(bad)


def test_durations_need_a_unit_and_a_positive_value():
    assert parse_duration("500ms") == 0.5
    assert parse_duration("30s") == 30
    assert parse_duration("20m") == 1200
    assert parse_duration("2h") == 7200
    for bad in ["30", "0s", "1d", "-1s", "1.5s", ""]:
        assert parse_duration(bad) is None, bad


def test_worker_ids_are_unique_per_process_start():
    first, second = default_worker_id(), default_worker_id()
    assert re.fullmatch(rf"[^/]+/{os.getpid()}-[0-9a-f]{{4}}", first), first
    ids = {default_worker_id() for _ in range(50)}
    assert len(ids) > 1 and first.rsplit("-", 1)[0] == second.rsplit("-", 1)[0]


def test_job_queues_are_declared_with_batons_exact_arguments():
    assert job_queue_arguments("p.") == {
        "x-queue-type": "quorum",
        "x-delivery-limit": 0,
        "x-dead-letter-exchange": "p.dead-letter",
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


def test_the_input_cache_settings_follow_the_rust_worker():
    config = Config.from_env({})
    assert (config.cache_max_bytes, config.object_access) == (10 << 30, "signed-url")
    assert os.path.basename(config.cache_dir) == "baton-cache"
    tuned = Config.from_env({"BATON_CACHE_DIR": "/var/cache/baton", "BATON_CACHE_MAX_BYTES": "500MiB",
                             "BATON_OBJECT_ACCESS": "credentials"})
    assert (tuned.cache_dir, tuned.cache_max_bytes, tuned.object_access) == ("/var/cache/baton", 500 << 20, "credentials")
    for bad in [{"BATON_CACHE_MAX_BYTES": "0"}, {"BATON_CACHE_MAX_BYTES": "10GB"}, {"BATON_OBJECT_ACCESS": "s3"}]:
        with pytest.raises(ConfigError):
            Config.from_env(bad)


@pytest.mark.parametrize("text,size", [("1024", 1024), ("500MiB", 500 << 20), ("10 GiB", 10 << 30)])
def test_sizes_are_bytes_or_binary_units(text, size):
    assert parse_bytes(text) == size


@pytest.mark.parametrize("text", ["", "0", "GiB", "10GB", "-1", "1.5GiB", "99999999999TiB"])
def test_other_sizes_are_refused(text):
    assert parse_bytes(text) is None
