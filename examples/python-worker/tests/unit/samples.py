"""Sample job messages and file references for the unit tests."""

from __future__ import annotations

import hashlib

from baton_worker.messages import FileRef

JOB_ID = "01a206a0-2b1d-727c-8d29-c48d7310d382"
FILE_ID = "01a206a0-2b1d-727c-8d29-c48d7310d383"


def message(**overrides) -> dict:
    body = {
        "version": 1,
        "job_id": JOB_ID,
        "model": "example-py",
        "params": {"lang": "en"},
        "attempt": 2,
        "files": [
            {
                "id": FILE_ID,
                "name": "doc",
                "path": "blobs/default/ab/cd/abcd",
                "size": 3,
                "sha256": "00" * 32,
                "content_type": "text/plain",
            }
        ],
    }
    body.update(overrides)
    return body


def file_ref(path: str, data: bytes, content_type: str = "text/plain") -> FileRef:
    return FileRef(FILE_ID, "doc", path, len(data), hashlib.sha256(data).hexdigest(), content_type)


def object_file(expires_at: str = "2026-12-03T20:00:00Z", sha256: str = "00" * 32, size: int = 3) -> dict:
    """A version 2 file reference to an object in storage."""
    return {
        "id": FILE_ID,
        "name": "doc",
        "object": {
            "store": "s3://bucket/prefix",
            "key": "prefix/blobs/default/ab/cd/abcd",
            "url": "https://bucket.example/prefix/blobs/default/ab/cd/abcd?X-Amz-Signature=00",
            "expires_at": expires_at,
        },
        "size": size,
        "sha256": sha256,
        "content_type": "text/plain",
    }
