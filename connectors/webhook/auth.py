"""Per-source authentication, always on the raw body and in constant time.

Schemes: standard (Standard Webhooks HMAC: webhook-id, webhook-timestamp, webhook-signature
"v1,<base64>", secret "whsec_<base64>"), github (X-Hub-Signature-256: sha256=<hex>), bearer,
header (a named header carrying a token), basic, url (a token in the URL path), none (only when
configured explicitly).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections import OrderedDict
from typing import Mapping, Optional

TOLERANCE = 300  # seconds either side for Standard Webhooks timestamps


class AuthError(Exception):
    pass


class ReplayGuard:
    """webhook-ids seen within the tolerance window (per process; the outbox's idempotency keys
    catch repeats across restarts)."""

    def __init__(self, size: int = 100_000) -> None:
        self.seen: OrderedDict[str, float] = OrderedDict()
        self.size = size

    def check(self, key: str, now: float) -> None:
        while self.seen and next(iter(self.seen.values())) < now - 2 * TOLERANCE:
            self.seen.popitem(last=False)
        if key in self.seen:
            raise AuthError("replayed webhook-id")
        self.seen[key] = now
        if len(self.seen) > self.size:
            self.seen.popitem(last=False)


def _eq(a: str, b: str) -> bool:
    # surrogatepass: header bytes that are not UTF-8 arrive as lone surrogates and must compare
    # unequal, not raise UnicodeEncodeError (a 500).
    return hmac.compare_digest(
        a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass")
    )


def verify(
    scheme: str,
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    path_token: Optional[str] = None,
    header_name: str = "X-Webhook-Token",
    username: str = "",
    replay: Optional[ReplayGuard] = None,
) -> None:
    if scheme == "none":
        return
    if scheme == "url":
        if not path_token or not _eq(path_token, secret):
            raise AuthError("missing or wrong token in the URL")
        return
    if scheme == "bearer":
        value = headers.get("Authorization", "")
        if not value.lower().startswith("bearer ") or not _eq(value[7:].strip(), secret):
            raise AuthError("missing or wrong bearer token")
        return
    if scheme == "header":
        if not _eq(headers.get(header_name, ""), secret):
            raise AuthError(f"missing or wrong {header_name}")
        return
    if scheme == "basic":
        value = headers.get("Authorization", "")
        try:
            user, _, password = base64.b64decode(value[6:], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise AuthError("missing or malformed Basic credentials") from None
        if not value.lower().startswith("basic ") or not (
            _eq(user, username) & _eq(password, secret)
        ):
            raise AuthError("wrong user or password")
        return
    if scheme == "github":
        sig = headers.get("X-Hub-Signature-256", "")
        expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        if not _eq(sig, expected):
            raise AuthError("missing or wrong X-Hub-Signature-256")
        return
    if scheme == "standard":
        _standard(secret, headers, body, replay)
        return
    raise AuthError(f"unknown auth scheme {scheme}")


def sign_standard(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret[6:] if secret.startswith("whsec_") else secret)
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def _standard(
    secret: str, headers: Mapping[str, str], body: bytes, replay: Optional[ReplayGuard]
) -> None:
    msg_id = headers.get("webhook-id", "")
    stamp = headers.get("webhook-timestamp", "")
    sigs = headers.get("webhook-signature", "")
    # ASCII digits only: str.isdigit() takes "²" and int() refuses it, or 5000 digits.
    if not msg_id or not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12) or not sigs:
        raise AuthError("webhook-id, webhook-timestamp and webhook-signature are required")
    if not (msg_id.isascii() and msg_id.isprintable() and len(msg_id) <= 256):
        raise AuthError("webhook-id must be printable ASCII, at most 256 characters")
    now = time.time()
    if abs(now - int(stamp)) > TOLERANCE:
        raise AuthError("webhook-timestamp outside the tolerance window")
    try:
        expected = sign_standard(secret, msg_id, int(stamp), body)
    except (binascii.Error, ValueError):
        raise AuthError("the configured secret is not whsec_<base64>") from None
    if not any(_eq(s, expected) for s in sigs.split()):
        raise AuthError("webhook-signature does not match")
    if replay is not None:
        replay.check(msg_id, now)
