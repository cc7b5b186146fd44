"""The app's splunkd REST endpoints (restmap.conf, persistent Python handlers):

- vtconnect/credential (GET): the VirusTotal API key for | vtlookup, for callers holding
  vtconnect_use_key (vtlookup_support/secrets.py says why).
- vtconnect/settings (GET, POST): the configuration page's reads and checked writes of
  vtlookup.conf (vtlookup_support/config_page.py).

splunkd imports this module, creates one object of the class restmap.conf names and calls
handle(request) per request; everything else is in vtlookup_support.
"""

from __future__ import annotations

import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vtlookup_support import oldpython  # noqa: E402  before anything that needs Python 3.9

if oldpython.too_old():
    raise ImportError(oldpython.message())  # splunkd logs it for the endpoint

APP_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(APP_DIR, "lib"))

from typing import Any, Dict  # noqa: E402

from vtlookup_support import config_page, rest, secrets  # noqa: E402

try:  # inside splunkd
    from splunk.persistconn.application import (  # type: ignore[import-not-found]
        PersistentServerConnectionApplication as _Base,
    )
except ImportError:  # tests drive the handlers as splunkd does, without Splunk's libraries
    _Base = object

log = logging.getLogger("vtconnect.rest")


class _Endpoint(_Base):  # type: ignore[misc,valid-type]
    def __init__(self, command_line: str = "", command_arg: Any = None) -> None:
        if _Base is not object:
            super().__init__()

    def reply(self, req: rest.Request) -> rest.Reply:
        raise NotImplementedError

    def handle(self, in_string: Any) -> Dict[str, Any]:
        try:
            req = rest.Request(in_string)
        except (ValueError, TypeError) as exc:
            return rest.answer(400, {"error": f"bad request: {exc}"})
        try:
            status, doc = self.reply(req)
        except Exception as exc:  # a clear JSON error, never a traceback for the caller
            from splunklib.binding import HTTPError

            if isinstance(exc, HTTPError) and exc.status in (401, 403):
                status, doc = exc.status, {"error": "splunkd refused the session"}
            else:
                log.exception("vtconnect REST handler failed")
                status, doc = 500, {"error": f"internal error: {type(exc).__name__}"}
        return rest.answer(status, doc)


class CredentialEndpoint(_Endpoint):
    def reply(self, req: rest.Request) -> rest.Reply:
        return secrets.credential_reply(req)


class SettingsEndpoint(_Endpoint):
    def reply(self, req: rest.Request) -> rest.Reply:
        return config_page.reply(req, APP_DIR)
