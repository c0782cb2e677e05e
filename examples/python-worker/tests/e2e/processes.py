"""Child processes with their output in a log file, and a TCP proxy whose connections a test can
cut."""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path

import pytest


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"



def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Process:
    """A child process with its output in a log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path):
        self.name = name
        self.log = log
        self._log_file = open(log, "wb")
        self.proc = subprocess.Popen(argv, env=env, stdout=self._log_file, stderr=subprocess.STDOUT)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 15) -> int:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log_file.close()
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL: a crash, with no chance to clean up."""
        self.proc.kill()
        self.proc.wait()

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_log(self, needle: str, deadline: float = 10) -> None:
        end = time.monotonic() + deadline
        while needle not in self.text():
            if time.monotonic() > end:
                pytest.fail(f"{needle!r} not in the log of {self.name} after {deadline}s\n{self.describe()}")
            time.sleep(0.05)

    def describe(self) -> str:
        return f"--- {self.name} log ---\n{tail(self.log)}"


class Proxy:
    """A TCP proxy in front of RabbitMQ whose connections the test can cut, as a network failure
    would."""

    def __init__(self, url: str):
        parts = urllib.parse.urlsplit(url)
        self.target = (parts.hostname, parts.port or 5672)
        self.server = socket.create_server(("127.0.0.1", 0))
        userinfo = parts.netloc.rpartition("@")[0]
        address = f"127.0.0.1:{self.server.getsockname()[1]}"
        netloc = f"{userinfo}@{address}" if userinfo else address
        self.url = urllib.parse.urlunsplit(parts._replace(netloc=netloc))
        self.sockets: list[socket.socket] = []
        # Cut sockets are only shut down, and closed at the end: closing them while a pipe thread
        # may still use them could let it act on a new connection that reused the descriptor.
        self.cut_sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
                upstream = socket.create_connection(self.target)
            except OSError:
                return
            with self.lock:
                self.sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(1 << 16):
                sink.sendall(data)
        except OSError:
            pass
        for s in (source, sink):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        """Breaks every connection made so far; new ones still get through."""
        with self.lock:
            sockets, self.sockets = self.sockets, []
            self.cut_sockets += sockets
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self.server.close()
        self.cut()
        time.sleep(0.1)  # let the pipe threads see their sockets shut
        for s in self.cut_sockets:
            s.close()
