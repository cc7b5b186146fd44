"""Delivering enriched alerts to a source's callback URL: Standard Webhooks signature (the job id
is the webhook-id, so receivers can drop a repeat), no redirects, bounded retries with backoff,
dead letters after the last try, and an SSRF guard on every attempt (https unless allowed, host
allow-list, no private or loopback addresses unless allowed)."""

from __future__ import annotations

import asyncio
import ipaddress
import random
import socket
import time
from typing import List, Tuple
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import ResolveResult
from aiohttp.resolver import ThreadedResolver

from .auth import sign_standard
from .config import Source


async def target_problem(src: Source) -> str:
    """Why the callback may not be called now, or ""."""
    parts = urlsplit(src.callback_url)
    if parts.scheme != "https" and not (parts.scheme == "http" and src.allow_http):
        return "callback must use https"
    host = parts.hostname or ""
    if src.callback_hosts and host not in src.callback_hosts:
        return f"callback host {host} is not in callback_hosts"
    if src.allow_private:
        return ""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, parts.port or 443, type=socket.SOCK_STREAM
        )
    except OSError as exc:
        return f"cannot resolve {host}: {exc}"
    for info in infos:
        if not _public(info[4][0]):
            return f"callback host {host} resolves to a non-public address {info[4][0]}"
    return ""


def _public(address: str) -> bool:
    addr = ipaddress.ip_address(address.split("%")[0])
    return addr.is_global and not addr.is_multicast


class PublicOnlyResolver(ThreadedResolver):
    """Resolves as usual, then refuses non-public addresses. The check above gives the clear
    message; this one runs on the very addresses the connection uses, so a DNS answer that
    changes between the two (rebinding) cannot reach a private address."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> List[ResolveResult]:
        hosts = await super().resolve(host, port, family)
        for h in hosts:
            if not _public(h["host"]):
                raise OSError(f"callback host {host} resolves to a non-public address {h['host']}")
        return hosts


def session(allow_private: bool) -> aiohttp.ClientSession:
    """The client for callbacks: public addresses only unless the source allows private ones."""
    resolver = None if allow_private else PublicOnlyResolver()
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=resolver))


async def deliver(
    session: aiohttp.ClientSession, src: Source, job_id: str, body: bytes
) -> Tuple[bool, str]:
    problem = await target_problem(src)
    if problem:
        return False, problem
    headers = {"Content-Type": "application/json", "webhook-id": job_id}
    if src.callback_secret:
        stamp = int(time.time())
        headers["webhook-timestamp"] = str(stamp)
        headers["webhook-signature"] = sign_standard(src.callback_secret, job_id, stamp, body)
    try:
        async with session.post(
            src.callback_url,
            data=body,
            headers=headers,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=15),
        ) as resp:
            await resp.content.read(1 << 16)  # the status is the answer; never buffer a flood
            if 200 <= resp.status < 300:
                return True, ""
            return False, f"HTTP {resp.status}"
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        return False, f"{type(exc).__name__}: {exc}"[:300]


def backoff(src: Source, attempts: int) -> float:
    return min(300.0, src.retry_base * 2 ** (attempts - 1)) * random.uniform(0.8, 1.2)
