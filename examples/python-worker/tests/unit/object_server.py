"""A tiny HTTP server standing in for an object store's signed URLs: it serves bytes by path,
counts the GETs it answers, and can fail or hold its answers on demand."""

from __future__ import annotations

import hashlib
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from baton_worker.messages import ObjectRef


class ObjectServer:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.gets = 0
        self.failing = (0, 200)  # the next N GETs are answered with this status
        self.open = threading.Event()
        self.open.set()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with server._lock:
                    server.gets += 1
                server.open.wait(timeout=30)
                with server._lock:
                    count, status = server.failing
                    if count:
                        server.failing = (count - 1, status)
                        self.send_error(status)
                        return
                body = server.objects.get(self.path.lstrip("/"))
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                # What S3 clients read besides the bytes.
                self.send_header("ETag", f'"{hashlib.md5(body).hexdigest()}"')
                self.send_header("Last-Modified", "Thu, 03 Dec 2026 20:00:00 GMT")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def put(self, name: str, data: bytes) -> ObjectRef:
        self.objects[name] = data
        return object_at(f"{self.base}/{name}")

    def close(self) -> None:
        self.open.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def object_at(url: str, expires_in: timedelta = timedelta(hours=1)) -> ObjectRef:
    return ObjectRef(
        store="s3://test-bucket",
        key="blobs/test",
        url=url,
        expires_at=datetime.now(timezone.utc) + expires_in,
    )


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
