"""What the app's own splunkd REST endpoints (bin/vtconnect_rest.py, restmap.conf) share: the
request splunkd hands a persistent handler, a splunklib connection for a token, the caller's
capabilities, and JSON replies.

A persistent handler gets one JSON document per request (method, query, form, payload, session,
system_authtoken when restmap.conf says passSystemAuth, server.rest_uri) and answers a dict with
payload, status and headers.
"""

from __future__ import annotations

import json
from typing import Any, Dict, FrozenSet, List, Optional, Tuple
from urllib.parse import urlsplit

APP = "vtconnect"
Reply = Tuple[int, Dict[str, Any]]


class Request:
    def __init__(self, raw: str) -> None:
        doc = json.loads(raw)
        if not isinstance(doc, dict):
            raise ValueError("request is not a JSON object")
        self.method = str(doc.get("method") or "GET").upper()
        self.query = _pairs(doc.get("query"))
        self.form = _pairs(doc.get("form"))
        self.payload = doc.get("payload") or ""
        self.user_token = str((doc.get("session") or {}).get("authtoken") or "")
        self.user = str((doc.get("session") or {}).get("user") or "")
        self.system_token = str(doc.get("system_authtoken") or "")
        self.rest_uri = str((doc.get("server") or {}).get("rest_uri") or "https://127.0.0.1:8089")
        self.path_info = str(doc.get("path_info") or "")

    def body(self) -> Any:
        """The JSON body of a POST (the configuration page sends JSON)."""
        if not self.payload:
            return {}
        return json.loads(self.payload)


def _pairs(items: Any) -> Dict[str, str]:
    out: Dict[str, str] = {}
    for item in items or []:
        if isinstance(item, (list, tuple)) and len(item) == 2:
            out[str(item[0])] = str(item[1])
    return out


def service(rest_uri: str, token: str) -> Any:
    """A splunklib Service in the app's namespace, authenticated by a session token."""
    from splunklib import client

    parts = urlsplit(rest_uri)
    return client.Service(
        scheme=parts.scheme or "https",
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 8089,
        token="Splunk " + token,
        owner="nobody",
        app=APP,
    )


def get_json(svc: Any, path: str, **query: Any) -> Any:
    resp = svc.get(path, output_mode="json", **query)
    return json.loads(resp.body.read())


def capabilities(svc: Any) -> Tuple[str, FrozenSet[str]]:
    """(user name, capabilities) of the session behind svc."""
    doc = get_json(svc, "/services/authentication/current-context")
    content = (doc.get("entry") or [{}])[0].get("content") or {}
    return str(content.get("username") or ""), frozenset(content.get("capabilities") or [])


def answer(status: int, doc: Dict[str, Any]) -> Dict[str, Any]:
    return {
        "status": status,
        "payload": json.dumps(doc),
        "headers": {"Content-Type": "application/json"},
    }


def error(status: int, message: str, errors: Optional[List[Dict[str, str]]] = None) -> Reply:
    doc: Dict[str, Any] = {"error": message}
    if errors:
        doc["errors"] = errors
    return status, doc
