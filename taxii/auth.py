"""Who is asking (HTTP Basic or a bearer token) and what they may do (per-collection rights).

Passwords are PBKDF2 hashes (~60 ms each to check, on purpose): a check runs off the event loop,
at most two at a time, and a verified credential is remembered (keyed by a keyed hash, never the
password) so that a firewall polling every minute costs a dictionary lookup."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
from collections import OrderedDict
from typing import Optional

from . import config as taxii_config
from .errors import TaxiiError

REMEMBERED = 1024


class Authenticator:
    def __init__(self, cfg: taxii_config.TaxiiConfig) -> None:
        self.cfg = cfg
        self._key = os.urandom(32)
        self._verified: OrderedDict[bytes, str] = OrderedDict()
        self._checks: Optional[asyncio.Semaphore] = None
        self._decoy = ""  # a hash to check unknown users against: same cost as a known one

    async def user(self, header: str) -> Optional[str]:
        """The user for an Authorization header; None when there is none; TaxiiError 401 when
        the credentials are malformed or wrong."""
        if not header:
            return None
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() == "bearer":
            digest = hashlib.sha256(value.strip().encode("utf-8", "replace")).hexdigest()
            user = self.cfg.tokens.get(digest)
            if user:
                return user
        elif scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
            except ValueError:  # binascii.Error, UnicodeDecodeError, non-ASCII text
                raise TaxiiError(401, "malformed Basic credentials") from None
            name, _, password = decoded.partition(":")
            if await self._check(name, password):
                return name
        raise TaxiiError(401, "unknown user, wrong password or token")

    async def _check(self, name: str, password: str) -> bool:
        key = hmac.new(self._key, f"{name}\0{password}".encode(), hashlib.sha256).digest()
        if self._verified.get(key) == name:
            return True
        encoded = self.cfg.users.get(name)
        if self._checks is None:
            self._checks = asyncio.Semaphore(2)
        async with self._checks:
            if encoded is None:
                if not self._decoy:
                    self._decoy = await asyncio.to_thread(taxii_config.hash_password, "")
                encoded = self._decoy
                name = ""  # never matches: the decoy only spends the same time
            ok = await asyncio.to_thread(taxii_config.verify_password, password, encoded)
        if ok and name:
            self._verified[key] = name
            while len(self._verified) > REMEMBERED:
                self._verified.popitem(last=False)
        return ok and bool(name)


def collection(
    cfg: taxii_config.TaxiiConfig, cid: str, user: Optional[str], write: bool = False
) -> taxii_config.Collection:
    """The collection if `user` may read (or write) it. Collections a user cannot see at all
    are 404 (their existence is not revealed), or 401 when nobody is authenticated."""
    coll = cfg.collection(cid)
    if coll is None or not (coll.can_read(user) or coll.can_write(user)):
        if user is None:
            raise TaxiiError(401, "authentication required")
        raise TaxiiError(404, "no such collection")
    allowed = coll.can_write(user) if write else coll.can_read(user)
    if not allowed:
        if user is None:
            raise TaxiiError(401, "authentication required")
        raise TaxiiError(403, f"not allowed to {'write' if write else 'read'} this collection")
    return coll
