"""The webhook outbox's interface: durable jobs (an alert is stored before it is answered) and
their callbacks, with retries and dead letters."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Dict, List, Optional, Tuple


class Outbox(ABC):
    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def accept(self, source: str, fmt: str, body: bytes, idem: Optional[str]) -> Tuple[str, bool]:
        """(job id, True when new); a known idempotency key returns the first job."""

    @abstractmethod
    def job_key(self) -> bytes:
        """A random key made once per outbox. Per-job read tokens are derived from it, so they
        survive restarts and hold for every process (every replica) sharing the outbox."""

    @abstractmethod
    def claim(self, limit: int = 10) -> List[Dict[str, Any]]:
        """Queued jobs (oldest first) now running here: id, source, format, body."""

    @abstractmethod
    def finish(
        self, jid: str, state: str, result: Dict[str, Any], deliver: bool = False
    ) -> None: ...

    @abstractmethod
    def retry_job(self, jid: str, when: float) -> None:
        """Queue a job again, not to be claimed before `when` (a transient failure: the jobs
        queued after it go first)."""

    @abstractmethod
    def due_deliveries(self, limit: int = 20) -> List[Dict[str, Any]]:
        """Callbacks due now, for this process to send: id, source, result, attempts."""

    @abstractmethod
    def delivered(self, jid: str, attempts: int) -> None: ...

    @abstractmethod
    def retry_later(self, jid: str, attempts: int, when: float, error: str, dead: bool) -> None: ...

    @abstractmethod
    def replay(self, jid: Optional[str] = None) -> int:
        """Dead letters (one, or all) go back to pending with a fresh attempt count."""

    @abstractmethod
    def dead_letters(self, limit: int = 100) -> List[Dict[str, Any]]:
        """Dead-lettered callbacks, oldest first: id, source, attempts, last_error, updated."""

    @abstractmethod
    def prune(self, before: float, batch: int = 1000) -> int:
        """Drop finished jobs accepted before `before` whose callback is delivered or not
        wanted (dead letters stay for `replay`), in short transactions; their idempotency
        keys go with them."""

    @abstractmethod
    def requeue_running(self) -> int:
        """Jobs this outbox's process left running go back to the queue."""

    @abstractmethod
    def get(self, jid: str) -> Optional[Dict[str, Any]]: ...

    @abstractmethod
    def delivery_counts(self) -> Dict[str, int]: ...

    @abstractmethod
    def counts(self) -> Dict[str, int]: ...
