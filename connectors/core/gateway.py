"""The only module that talks to VirusTotal: vt-py underneath, our error classes on top.

Every call returns parsed data or raises one of the GatewayError subclasses below, so callers
decide per class: NotFound is a verdict, RateLimited and BudgetSpent mean `quota`,
CredentialsRejected stops everything, Unavailable has already been retried and costs one
observable only.

With a governor, every attempt (first tries, retries after 5xx/timeouts, submissions, polls) takes
a slot first and stamps it when its answer arrives, so the ledger counts what the server counted.
A 429 is never retried at once: the governor holds every process on the host until Retry-After,
and a caller whose deadline comes first gets BudgetSpent.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, Optional, Sequence, Tuple
from urllib.parse import urlsplit

from . import codec
from .config import VirusTotalSettings
from .observable import Kind, Observable
from .quota import Priority, QuotaGovernor, Refused
from .report import Report, ReportError, parse_report

if TYPE_CHECKING:
    import vt

log = logging.getLogger(__name__)

DIRECT_UPLOAD_LIMIT = 32 * 1024 * 1024
UPLOAD_URL_LIMIT = 650 * 1024 * 1024
RETRYABLE = {"TransientError", "DeadlineExceededError", "ServerError"}
CREDENTIALS = {
    "WrongCredentialsError",
    "AuthenticationRequiredError",
    "ForbiddenError",
    "UserNotActiveError",
}
RATE_LIMITED = {"QuotaExceededError", "TooManyRequestsError"}
MAX_RATE_LIMITED = 3  # 429 answers one call may get before it gives up (as quota)


class GatewayError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message


class NotFound(GatewayError):
    pass


class RateLimited(GatewayError):
    def __init__(self, code: str, message: str, retry_after: Optional[float]) -> None:
        super().__init__(code, message)
        self.retry_after = retry_after


class CredentialsRejected(GatewayError):
    """The key is wrong, inactive or lacks the privilege: a configuration problem, not data."""


class BadAnswer(GatewayError):
    """VirusTotal (or what stands in for it) answered something we cannot read."""


class Unavailable(GatewayError):
    """Server errors, timeouts or broken connections that outlasted the retries."""


class BudgetSpent(GatewayError):
    """The governor gave no slot: budget spent, or none free before the caller's deadline."""


@dataclass(frozen=True)
class Slot:
    """Who asks, and until when (absolute, the governor's clock): what every attempt of one
    call tells the governor."""

    priority: Priority = Priority.INTERACTIVE
    until: Optional[float] = None
    connector: str = ""


ANY_TIME = Slot()


class Gateway:
    """One per process and event loop; create it (or call it first) inside the running loop."""

    def __init__(
        self, settings: VirusTotalSettings, governor: Optional[QuotaGovernor] = None
    ) -> None:
        if not settings.api_key:
            raise CredentialsRejected(
                "NoApiKey", "no VirusTotal API key: set VT_API_KEY or virustotal.api_key"
            )
        self.settings = settings
        self.governor = governor
        self._client: Optional[vt.Client] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._tier_probe: Optional[asyncio.Future[None]] = None

    def _vt(self) -> vt.Client:
        # Imported here: vt-py and aiohttp cost ~0.2 s to import, which answers from the cache
        # (say a Splunk search over known indicators) never need.
        import vt

        # vt.Client binds its connector to the loop it was created in (DESIGN.md).
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            s = self.settings
            self._client = vt.Client(
                s.api_key.get(),
                agent=s.agent,
                host=s.api_url,
                # aiohttp's total timeout covers the whole request, the answer's body included:
                # one timer per request (wrapping each in asyncio.wait_for cost a task and a
                # timer more, measured on the cold path).
                timeout=max(0.001, s.timeout),  # type: ignore[arg-type]  # float is fine
                proxy=s.proxy,
                verify_ssl=s.verify_tls,
            )
            # aiohttp silently sends an idempotent request again when the server drops a
            # kept-alive connection; the server may have counted the first one, the governor
            # would see neither. Our own retries take a slot each, so switch it off.
            session = self._client._get_session()
            if hasattr(session, "_retry_connection"):
                session._retry_connection = False
            self._loop = loop
        return self._client

    async def aclose(self) -> None:
        if self._client is not None and self._loop is asyncio.get_running_loop():
            await self._client.close_async()
        self._client = None

    # -- lookups ---------------------------------------------------------------------------
    async def fetch(
        self, obs: Observable, relationships: Sequence[str] = (), slot: Slot = ANY_TIME
    ) -> Report:
        """GET the object, with relationship descriptors in the same request."""
        params = {"relationships": ",".join(relationships)} if relationships else None
        doc = await self._call("GET", obs.path, slot, params=params)
        try:
            return parse_report(doc)
        except ReportError as exc:
            raise BadAnswer("BadAnswer", str(exc)) from None

    async def reanalyse(self, obs: Observable, slot: Slot = ANY_TIME) -> str:
        """Ask for a fresh analysis; returns the analysis id."""
        if obs.kind == Kind.URL:
            doc = await self._call("POST", "/urls", slot, form={"url": obs.value})
        else:
            doc = await self._call("POST", obs.path + "/analyse", slot)
        return _analysis_id(doc)

    async def scan_url(self, url: str, slot: Slot = ANY_TIME) -> str:
        return _analysis_id(await self._call("POST", "/urls", slot, form={"url": url}))

    async def scan_file(self, path: str, slot: Slot = ANY_TIME) -> str:
        size = os.path.getsize(path)
        if size > UPLOAD_URL_LIMIT:
            raise GatewayError("TooLarge", f"{size} bytes is over VirusTotal's 650 MB upload limit")
        target = "/files"
        if size > DIRECT_UPLOAD_LIMIT:
            doc = await self._call("GET", "/files/upload_url", slot)
            target = doc.get("data") if isinstance(doc, dict) else None
            if not isinstance(target, str) or not target.startswith(("http://", "https://")):
                raise BadAnswer("BadAnswer", "upload_url answer has no URL")
        return _analysis_id(await self._call("POST", target, slot, file_path=path, retries=0))

    async def analysis(self, analysis_id: str, slot: Slot = ANY_TIME) -> Dict[str, Any]:
        doc = await self._call("GET", f"/analyses/{analysis_id}", slot)
        data = doc.get("data") if isinstance(doc, dict) else None
        if not isinstance(data, dict) or not isinstance(data.get("attributes"), dict):
            raise BadAnswer("BadAnswer", "analysis answer has no attributes")
        return doc

    async def get_json(
        self, path: str, params: Optional[Dict[str, Any]] = None, slot: Slot = ANY_TIME
    ) -> Any:
        """Any other GET (collections, IoC stream, hunting, search) with the same error mapping."""
        return await self._call("GET", path, slot, params=params)

    # -- transport ---------------------------------------------------------------------------
    async def _call(
        self,
        method: str,
        path: str,
        slot: Slot,
        *,
        params: Optional[Dict[str, Any]] = None,
        form: Optional[Dict[str, str]] = None,
        file_path: Optional[str] = None,
        retries: Optional[int] = None,
    ) -> Any:
        import aiohttp

        attempts = 1 + (self.settings.retries if retries is None else retries)
        failed = rate_limited = 0
        last: Optional[GatewayError] = None
        while True:
            ticket = await self._take(slot, last)
            answered = False  # no answer (timeout, broken, cancelled): it may still arrive
            try:
                result = await self._once(method, path, params, form, file_path)
                answered = True
                return result
            except RateLimited as exc:
                answered = True
                # Never again at once: the governor holds every process on the host until
                # Retry-After; a few 429s in a row and this call gives up (the caller: quota).
                rate_limited += 1
                if self.governor is not None:
                    self.governor.learn_429(exc.retry_after, exc.code)
                if self.governor is None or rate_limited >= MAX_RATE_LIMITED:
                    raise
                last = exc
                continue
            except asyncio.TimeoutError:
                last = Unavailable("Timeout", f"no answer within {self.settings.timeout:g} s")
            except (aiohttp.ClientError, ConnectionError) as exc:
                last = Unavailable("ConnectionError", type(exc).__name__)
            except GatewayError as exc:
                answered = True
                if exc.code not in RETRYABLE:
                    raise
                last = Unavailable(exc.code, exc.message)
            finally:
                if self.governor is not None:
                    self.governor.sent(ticket, answered)
            failed += 1
            log.debug(
                "VirusTotal %s %s failed (%s), attempt %d/%d", method, path, last, failed, attempts
            )
            if failed >= attempts:
                raise last
            # Jittered exponential backoff: 0.5 s, 1 s, 2 s ... at most 8 s.
            await asyncio.sleep(min(8.0, 0.5 * 2 ** (failed - 1)) * random.uniform(0.5, 1.5))

    async def _take(self, slot: Slot, last: Optional[GatewayError]) -> int:
        """A governor slot for the next attempt. Without one: BudgetSpent for a first try or
        after a 429 (the caller answers quota), else the error the retry was meant to fix."""
        if self.governor is None:
            return 0
        if self.governor.tier == "auto" and _is_loopback(self.settings.api_url):
            if (
                self._tier_probe is None
                or self._tier_probe.get_loop() is not asyncio.get_running_loop()
            ):
                self._tier_probe = asyncio.ensure_future(self._probe_emulator_tier())
            await asyncio.shield(self._tier_probe)
        try:
            return await self.governor.take(slot.priority, slot.until, slot.connector)
        except Refused as exc:
            if last is None or isinstance(last, RateLimited):
                raise BudgetSpent("BudgetSpent", str(exc)) from None
            raise last from None

    async def _probe_emulator_tier(self) -> None:
        """Tier "auto" against a loopback API: a local emulator says which tier it enforces for
        our key (/_emulator/health, no API call); adopt it. Anything else keeps public limits."""
        import aiohttp

        governor = self.governor
        if governor is None or governor.tier != "auto":
            return
        try:
            session = self._vt()._get_session()  # sends our X-Apikey
            timeout = aiohttp.ClientTimeout(total=min(5.0, self.settings.timeout))
            url = self.settings.api_url + "/_emulator/health"
            async with session.get(url, timeout=timeout) as resp:
                info = await resp.json(content_type=None) if resp.status == 200 else {}
            if resp.headers.get("X-VT-Emulator") != "1" or not isinstance(info, dict):
                return
            tier, per_minute, per_day = info["tier"], int(info["per_minute"]), int(info["per_day"])
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError, KeyError, TypeError):
            return
        governor.adopt(str(tier), per_minute, per_day)
        log.info("local emulator enforces the %s tier: %s/min, %s/day", tier, per_minute, per_day)

    async def _once(
        self,
        method: str,
        path: str,
        params: Optional[Dict[str, Any]],
        form: Optional[Dict[str, str]],
        file_path: Optional[str],
    ) -> Any:
        import aiohttp

        client = self._vt()
        if method == "GET":
            resp = await client.get_async(path, params=params)
        elif file_path is not None:
            with open(file_path, "rb") as fh:
                data = aiohttp.FormData()
                data.add_field("file", fh, filename=os.path.basename(file_path))
                resp = await client.post_async(path, data=data)  # type: ignore[arg-type]
        elif form is not None:
            data = aiohttp.FormData()
            for k, v in form.items():
                data.add_field(k, v)
            resp = await client.post_async(path, data=data)  # type: ignore[arg-type]
        else:
            resp = await client.post_async(path)
        status = resp.status
        if status == 200:
            try:
                return codec.loads(await resp.read_async())
            except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
                raise BadAnswer("BadAnswer", "response is not valid JSON") from None
        code, message = await _error_of(client, resp)
        if code == "NotFoundError":
            raise NotFound(code, message)
        if code in RATE_LIMITED or status == 429:
            raise RateLimited(code, message, _retry_after(resp.headers.get("Retry-After")))
        if code in CREDENTIALS:
            raise CredentialsRejected(code, message)
        if status >= 500 or code in RETRYABLE:
            raise GatewayError(code if code in RETRYABLE else "ServerError", message)
        raise GatewayError(code, message)


async def _error_of(client: vt.Client, resp: vt.ClientResponse) -> Tuple[str, str]:
    """VirusTotal's error code and message. vt-py reads JSON errors for 4xx only; a 503
    TransientError or 504 DeadlineExceededError also carries one, and the code decides the retry."""
    status = resp.status
    if status >= 500:
        try:
            err = codec.loads(await resp.read_async()).get("error", {})
            return str(err["code"]), str(err.get("message", ""))
        except (ValueError, RecursionError, AttributeError, KeyError, TypeError):
            return "ServerError", f"HTTP {status}"
    try:
        error = await client.get_error_async(resp)
    except (ValueError, UnicodeDecodeError):
        error = None
    if error is None:
        return "ServerError", f"HTTP {status}"
    return str(error.code), str(error.message)


def _is_loopback(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _retry_after(value: Optional[str]) -> Optional[float]:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def _analysis_id(doc: Any) -> str:
    data = doc.get("data") if isinstance(doc, dict) else None
    aid = data.get("id") if isinstance(data, dict) else None
    if not isinstance(aid, str) or not aid:
        raise BadAnswer("BadAnswer", "analysis answer has no id")
    return aid
