"""medallion 3.0.0 (the OASIS reference TAXII server) on a loopback port, as a test peer and a
benchmark anchor. Memory backend, one API root, one writable collection."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Tuple

COLLECTION = "91a7b528-80eb-42ed-a74d-c6fbd5a26116"
USER, PASSWORD = "admin", "Password0"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def medallion(tmp: Path) -> Iterator[Tuple[str, str]]:
    """Yields (discovery URL, collection URL)."""
    port = _port()
    base = f"http://127.0.0.1:{port}"
    data = {
        "/discovery": {"title": "medallion peer", "default": f"{base}/api1/",
                       "api_roots": [f"{base}/api1/"]},
        "api1": {
            "information": {"title": "api1", "versions": ["application/taxii+json;version=2.1"],
                            "max_content_length": 104857600},
            "status": [],
            "collections": [{"id": COLLECTION, "title": "peer", "can_read": True,
                             "can_write": True, "media_types": [
                                 "application/stix+json;version=2.1"],
                             "objects": [], "manifest": []}],
        },
    }  # fmt: skip
    (tmp / "data.json").write_text(json.dumps(data))
    (tmp / "config.json").write_text(
        json.dumps(
            {
                "backend": {
                    "module": "medallion.backends.memory_backend",
                    "module_class": "MemoryBackend",
                    "filename": str(tmp / "data.json"),
                },
                "users": {USER: PASSWORD},
                "taxii": {"max_page_size": 100},
            }
        )
    )
    exe = os.path.join(os.path.dirname(sys.executable), "medallion")
    proc = subprocess.Popen(
        [
            exe,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "ERROR",
            str(tmp / "config.json"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"{base}/taxii2/", timeout=1)
            except urllib.error.HTTPError:
                break  # 401: it is up
            except OSError:
                time.sleep(0.05)
                continue
            break
        yield f"{base}/taxii2/", f"{base}/api1/collections/{COLLECTION}/"
    finally:
        proc.terminate()
        proc.wait(10)
