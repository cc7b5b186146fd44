"""The alert receiver, assembled: the routes of receiver.py on one aiohttp application with the
error middleware (errors.py), and beside it, for the application's lifetime, the job worker
(worker.py) and the callback loop (callbacks.py). The enrichment block an alert gets is
block.py."""

from __future__ import annotations

import asyncio
from importlib import resources

from aiohttp import web

from connectors.core.config import Settings
from connectors.core.enricher import Enricher

from .callbacks import deliver_loop
from .errors import errors
from .receiver import Receiver
from .worker import Worker

__all__ = ["RECEIVER", "Receiver", "build_app"]


OPENAPI = resources.files(__package__).joinpath("openapi.json").read_bytes()


async def openapi(request: web.Request) -> web.Response:
    """The OpenAPI 3.1 description of this API (shipped as package data)."""
    return web.Response(body=OPENAPI, content_type="application/json")


def build_app(settings: Settings, enricher: Enricher) -> web.Application:
    receiver = Receiver(settings, enricher)
    app = web.Application(middlewares=[errors])
    app[RECEIVER] = receiver
    app.router.add_post("/v1/alerts/{format}", receiver.post_alert, expect_handler=receiver.expect)
    app.router.add_post(
        "/v1/alerts/{format}/{token}", receiver.post_alert, expect_handler=receiver.expect
    )
    app.router.add_get("/v1/jobs/{id}", receiver.get_job)
    app.router.add_get("/healthz", receiver.healthz)
    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/metrics", receiver.metrics)

    async def worker(app: web.Application):  # type: ignore[no-untyped-def]
        tasks = [
            asyncio.ensure_future(Worker(receiver).run()),
            asyncio.ensure_future(deliver_loop(receiver.outbox, receiver.cfg)),
        ]
        yield
        # Graceful: the job in hand may finish within the grace period; then everything stops,
        # and what was claimed but not finished goes back to the queue for the next start.
        receiver.stopping.set()
        receiver.wake.set()
        await asyncio.wait(tasks[:1], timeout=receiver.cfg.shutdown_grace)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        receiver.outbox.requeue_running()
        receiver.outbox.close()
        receiver.extractor.shutdown(wait=False)

    app.cleanup_ctx.append(worker)
    return app


RECEIVER: web.AppKey[Receiver] = web.AppKey("receiver")
