"""The VirusTotal API key without list_storage_passwords.

list_storage_passwords lets a role list every credential its roles can read on the instance;
analysts running | vtlookup should not need it. The app's REST endpoint vtconnect/credential
(bin/vtconnect_rest.py, restmap.conf passSystemAuth) reads the app's own credentials with the
app's system token and hands them to callers holding the capability vtconnect_use_key (granted
by the role vtconnect_user) or already able to read credentials. The credentials themselves
stay readable by admins only (metadata/default.meta [passwords]).
"""

from __future__ import annotations

import json
from typing import Any, Dict

from vtlookup_support import rest, settings

ENDPOINT = "vtconnect/credential"
USE_KEY = "vtconnect_use_key"
MAY_READ = frozenset({USE_KEY, "list_storage_passwords", "admin_all_objects"})
NAMES = (settings.KEY_USER, settings.PROXY_USER, settings.HUB_USER)  # the app's credentials


class KeyDenied(Exception):
    """The searching user may not use the app's API key (the message says what to grant)."""


def read(service: Any, app: str) -> Dict[str, str]:
    """username -> secret for the command: through the app's endpoint; storage/passwords
    directly only where the endpoint does not exist yet (splunkd not restarted since install)."""
    from splunklib.binding import HTTPError

    try:
        resp = service.get(ENDPOINT, owner="nobody", app=app, output_mode="json")
    except HTTPError as exc:
        if exc.status == 403:
            raise KeyDenied(_message(exc.body) or str(exc)) from None
        if exc.status != 404:
            raise
        return settings.read_secrets(service, app)
    doc = json.loads(resp.body.read())
    return {k: str(doc[k]) for k in NAMES if isinstance(doc, dict) and doc.get(k)}


def _message(body: Any) -> str:
    try:
        return str(json.loads(body).get("error") or "")
    except (ValueError, AttributeError, TypeError):
        return ""


def credential_reply(req: rest.Request) -> rest.Reply:
    """GET vtconnect/credential: the app's credentials for a caller allowed to use them."""
    if req.method != "GET":
        return rest.error(405, "only GET")
    if not req.system_token:
        return rest.error(500, "restmap.conf must set passSystemAuth = true for this endpoint")
    user, caps = rest.capabilities(rest.service(req.rest_uri, req.user_token))
    if not caps & MAY_READ:
        return rest.error(
            403,
            f"user {user or req.user!r} may not use the VirusTotal API key: an admin grants it "
            f"with the role vtconnect_user (capability {USE_KEY})",
        )
    stored = settings.read_secrets(rest.service(req.rest_uri, req.system_token), rest.APP)
    return 200, {k: stored[k] for k in NAMES if stored.get(k)}
