"""VirusTotal's answer shapes: objects under "data" (marked as emulator data in "meta") and
errors as {"error": {"code", "message"}} with the status VirusTotal uses for the code."""

from __future__ import annotations

from typing import Any, Dict, Optional

from aiohttp import web

# Error codes VirusTotal answers with, and their HTTP status.
STATUS = {
    "BadRequestError": 400,
    "InvalidArgumentError": 400,
    "NotAvailableYet": 400,
    "UnselectiveContentQueryError": 400,
    "UnsupportedContentQueryError": 400,
    "AuthenticationRequiredError": 401,
    "WrongCredentialsError": 401,
    "ForbiddenError": 403,
    "UserNotActiveError": 403,  # the brief's choice; VirusTotal's docs list 401
    "NotFoundError": 404,
    "AlreadyExistsError": 409,
    "FailedDependencyError": 424,
    "QuotaExceededError": 429,
    "TooManyRequestsError": 429,
    "ServerError": 500,
    "TransientError": 503,
    "DeadlineExceededError": 504,
}
EMULATOR_META = {"emulator": True}


def error(
    status: int, code: str, message: str, headers: Optional[Dict[str, str]] = None
) -> web.Response:
    return web.json_response(
        {"error": {"code": code, "message": message}}, status=status, headers=headers
    )


def coded(code: str, message: str, headers: Optional[Dict[str, str]] = None) -> web.Response:
    return error(STATUS.get(code, 500), code, message, headers)


def doc(data: Any, **meta: Any) -> web.Response:
    return web.json_response({"data": data, "meta": {**EMULATOR_META, **meta}})
