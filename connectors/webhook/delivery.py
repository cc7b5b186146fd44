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
from typing import Tuple
from urllib.parse import urlsplit

import aiohttp

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
        addr = ipaddress.ip_address(info[4][0].split("%")[0])
        if not addr.is_global or addr.is_multicast:
            return f"callback host {host} resolves to a non-public address {addr}"
    return ""


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
            await resp.read()
            if 200 <= resp.status < 300:
                return True, ""
            return False, f"HTTP {resp.status}"
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        return False, type(exc).__name__


def backoff(src: Source, attempts: int) -> float:
    return min(300.0, src.retry_base * 2 ** (attempts - 1)) * random.uniform(0.8, 1.2)
