"""TAXII responses: every answer is application/taxii+json;version=2.1, every error a TAXII error
resource with the HTTP status repeated in `http_status`."""

from __future__ import annotations

import json
from typing import Any, Dict, Optional

from aiohttp import web

MEDIA = "application/taxii+json;version=2.1"
STIX_MEDIA = "application/stix+json;version=2.1"
TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
          405: "Method Not Allowed", 406: "Not Acceptable", 413: "Payload Too Large",
          415: "Unsupported Media Type", 422: "Unprocessable Entity",
          500: "Internal Server Error"}  # fmt: skip


class TaxiiError(Exception):
    def __init__(self, status: int, description: str = "", title: str = "") -> None:
        super().__init__(description)
        self.status = status
        self.title = title or TITLES.get(status, "Error")
        self.description = description


def reply(body: Any, status: int = 200, headers: Optional[Dict[str, str]] = None) -> web.Response:
    return web.Response(
        body=json.dumps(body, allow_nan=False).encode(),  # strict JSON, never NaN
        status=status,
        headers={"Content-Type": MEDIA, **(headers or {})},
    )


def error(
    status: int, title: str, description: str = "", headers: Optional[Dict[str, str]] = None
) -> web.Response:
    return reply(
        {"title": title, "description": description, "http_status": str(status)}, status, headers
    )
