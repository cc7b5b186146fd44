"""| vtlookup field=<name> [type=auto|file|url|domain|ip] [prefix=vt_] [extract=f] [nocache=f]
[rescan_after_days=N] [max_lookups=N] [deadline=SECONDS]

A streaming command (protocol v2, runs on the search head) that adds VirusTotal verdicts to each
record. Thin by design: records -> values -> connectors.core Enricher -> fields. Per chunk it asks
the core once for the chunk's unique values (cache first, then VirusTotal through the host's
quota governor); quota or outage turn into vt_verdict=quota/error and one warning per search.
"""

from __future__ import annotations

import gc
import logging
import logging.handlers
import os
import sqlite3
import sys
import time
from collections import Counter
from dataclasses import replace

from vtlookup_support import oldpython  # before anything that needs Python 3.9

if oldpython.too_old():
    oldpython.refuse_search_command()

APP_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(APP_DIR, "lib"))

from typing import Any, Dict, List, Optional  # noqa: E402

from splunklib.searchcommands import (  # noqa: E402
    Configuration,
    Option,
    StreamingCommand,
    dispatch,
    validators,
)
from vtlookup_support import chunk, es_intel, fields, opstats, settings  # noqa: E402

from connectors.core.config import ConfigError  # noqa: E402
from connectors.core.observable import KIND_CHOICES  # noqa: E402
from connectors.core.verdict import Enrichment, Verdict  # noqa: E402

APP = os.path.basename(APP_DIR)
LOG_LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARNING": logging.WARNING,
              "ERROR": logging.ERROR}  # fmt: skip
BATCH_ROWS = 10_000  # rows enriched together: bounds memory, keeps VirusTotal calls concurrent
ENRICH_AT_ONCE = 2_000  # values per call to the core: bounds the decoded reports held at once
MAX_KNOWN = 50_000  # encoded answers kept for the rest of a search (~0.3 KB each)
MAX_SEEN = 1_000_000  # distinct values counted exactly per search (a hash each, ~70 bytes)
log = logging.getLogger("vtconnect.vtlookup")


def _setup_logging() -> None:
    """Summaries go to $SPLUNK_HOME/var/log/splunk/vtlookup.log, which Splunk indexes into
    _internal (the dashboard reads them); nothing is written when that directory is missing."""
    if log.handlers:
        return
    log.propagate = False
    log.setLevel(logging.INFO)
    home = os.environ.get("SPLUNK_HOME", "")
    folder = os.path.join(home, "var", "log", "splunk") if home else ""
    if folder and os.path.isdir(folder):
        handler: logging.Handler = logging.handlers.RotatingFileHandler(
            os.path.join(folder, "vtlookup.log"), maxBytes=10_000_000, backupCount=3
        )
        handler.setFormatter(
            logging.Formatter("%(asctime)s level=%(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%S%z")
        )
    else:
        handler = logging.NullHandler()
    log.addHandler(handler)


def _q(text: str) -> str:
    """A value for key="value" log lines."""
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


@Configuration(distributed=False)
class VTLookupCommand(StreamingCommand):
    """Enriches each record with VirusTotal verdicts for the indicator(s) in a field."""

    field = Option(require=True, validate=validators.Fieldname(), doc="Field holding indicators")
    type = Option(default="auto", doc="auto, file, url, domain or ip")
    prefix = Option(default="vt_", doc="Prefix of the output fields")
    extract = Option(default=False, validate=validators.Boolean(), doc="Find indicators in text")
    nocache = Option(default=False, validate=validators.Boolean(), doc="Ignore the cache")
    rescan_after_days = Option(default=None, validate=validators.Integer(minimum=0))
    max_lookups = Option(default=None, validate=validators.Integer(minimum=0))
    deadline = Option(default=None, validate=validators.Integer(minimum=1, maximum=86400))

    def __init__(self) -> None:
        super().__init__()
        self._enricher: Any = None
        self._settings: Any = None  # connectors.core.config.Settings from vtlookup.conf
        self._hub: Any = None  # [remote] url set: the hub answers (vtlookup_support/hub.py)
        self._kind: Optional[str] = None
        self._started = time.time()
        self._deadline_at: Optional[float] = None
        self._lookups_left: Optional[int] = None
        self._warned = False
        self._names: List[str] = []
        self._empty_tail = ""
        self._known: Dict[str, Any] = {}  # value -> (verdict, encoded columns)
        self._answers: Any = None  # answers kept between searches (vtlookup_support/answers.py)
        self._answers_ttl = 0
        self._stats: Dict[str, int] = {}
        self._seen: set = set()  # hashes of the values counted in this search's summary
        self._risky_logged: set = set()
        self._max_risky = 100  # event=risky lines per search ([logging] max_risky_lines)
        self._kv: Any = None
        self._risky_docs: List[Dict[str, Any]] = []  # for the vtconnect_risky collection
        self._es = es_intel.EsSettings()  # [es_threat_intel]: risky indicators into ES

    # -- getinfo: check everything that can be checked before any record arrives ------------
    def prepare(self) -> None:
        _setup_logging()
        problems: List[str] = []
        kind = str(self.type or "auto").strip().lower()
        if kind not in KIND_CHOICES:
            problems.append(f"type={self.type} is not one of {', '.join(KIND_CHOICES)}")
        prefix = str(self.prefix)
        if not prefix or not all(c.isalnum() or c == "_" for c in prefix):
            problems.append(f"prefix={prefix!r} must be letters, digits or '_'")
        if problems:
            self._fail("vtlookup: " + "; ".join(problems))
        self._kind = None if kind == "auto" else kind
        self._names = fields.field_names(prefix)
        self._empty_tail = chunk.encode([""] * len(self._names))
        self._record_writer = chunk.ChunkWriter.replacing(self._record_writer)
        try:
            self._build_enricher()
        except ConfigError as exc:
            self._fail(f"vtlookup: configuration problem: {exc}")

    def _fail(self, message: str) -> None:
        self.write_error("{}", message)
        log.error("event=config_error message=%s", _q(message))
        raise SystemExit(1)

    def _build_enricher(self) -> None:
        from connectors.core.store import Cache
        from connectors.core.clock import Clock
        from connectors.core.enricher import Enricher

        service = self.service
        conf: Dict[str, Dict[str, str]] = {}
        secrets: Dict[str, str] = {}
        if service is not None:
            try:
                conf = settings.read_conf_rest(service, APP)
            except Exception as exc:  # splunkd unreachable: the app's own files still apply
                log.warning("event=conf_rest_failed error=%s", _q(repr(exc)))
            from vtlookup_support import secrets as app_secrets

            try:
                secrets = app_secrets.read(service, APP)
            except app_secrets.KeyDenied as exc:
                raise ConfigError(str(exc)) from None
            except Exception as exc:
                log.warning("event=passwords_failed error=%s", _q(repr(exc)))
        if not conf:
            conf = settings.read_conf_files(APP_DIR)
        from vtlookup_support.config_page import check_ours

        problems = check_ours(conf)
        if problems:
            raise ConfigError("; ".join(problems))
        logging_conf = conf.get("logging", {})
        log.setLevel(LOG_LEVELS[(logging_conf.get("level") or "INFO").strip().upper()])
        self._max_risky = _int(logging_conf.get("max_risky_lines", "100"))
        self._es = es_intel.from_conf(conf)
        info = self._metadata.searchinfo
        dispatch_dir = getattr(info, "dispatch_dir", "") or ""
        state = settings.state_dir(
            conf.get("command", {}).get("state_dir", ""), os.environ, dispatch_dir
        )
        core, local = settings.build(conf, secrets, state, env=os.environ)
        # The command keeps its own encoded answers (_known); the core's in-process memo of
        # reports would only hold ~5 KB per distinct value for the rest of the search.
        core = replace(core, cache=replace(core.cache, lru_size=0))
        self._settings = core
        from vtlookup_support import hub

        try:
            remote = hub.configured(local, secrets)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if remote is None and not core.virustotal.api_key:
            raise ConfigError(
                f"no VirusTotal API key: set it on the {APP} setup page (storage/passwords, "
                f"realm {APP}, user {settings.KEY_USER}); users running vtlookup need the "
                "role vtconnect_user"
            )
        os.makedirs(core.state_path, exist_ok=True)
        clock = Clock()
        cache: Any = None
        if remote is not None:  # the hub's cache is the shared one; answers stay kept here
            self._hub = hub.HubLookups(remote)
            if self.nocache or self.rescan_after_days:
                self.write_warning(
                    "{}", "vtlookup: nocache and rescan_after_days do not apply when the "
                    "values go to a remote hub ([remote] url); the hub's cache answers"
                )  # fmt: skip
        elif local["cache"].get("backend", "kvstore").strip().lower() == "kvstore" and service:
            from vtlookup_support.kvstore import KVStoreCache

            self._kv = KVStoreCache(service, APP, Cache(core.cache_path, core.cache, clock), clock)
            cache = self._kv
        if remote is None:
            self._enricher = Enricher(core, connector="splunk", cache=cache, clock=clock)
        cmd = local["command"]
        self._answers_ttl = _int(cmd.get("answers_ttl", "600"))
        from vtlookup_support.answers import Answers, fingerprint

        # A hub's answers follow the hub's settings: kept apart from direct ones, by its URL.
        where = ("hub", remote.url) if remote is not None else core.virustotal.api_url
        stamp = fingerprint(core.policy, core.privacy, where, fields.NAMES, _version(), core.lists)
        if self._kv is not None:
            self._kv.stamp = stamp
        if self._answers_ttl:
            path = os.path.join(core.state_path, "vtlookup_answers.sqlite")
            try:
                self._answers = Answers(path, stamp, self._kind or "auto", clock)
            except (OSError, sqlite3.Error) as exc:  # only the faster path is lost
                log.warning("event=answers_unavailable error=%s", _q(repr(exc)))
        deadline = self.deadline or _int(cmd.get("deadline"))
        self._deadline_at = self._started + deadline if deadline else None
        limit = self.max_lookups if self.max_lookups is not None else _int(cmd.get("max_lookups"))
        self._lookups_left = limit if limit else None
        if self.max_lookups == 0:
            self._lookups_left = 0

    # -- execute --------------------------------------------------------------------------
    def _execute_chunk_v2(self, process: Any, data: Any) -> None:
        """splunklib 2.1.1's per-chunk step, replaced: rows pass through as CSV cells and get
        the enrichment columns appended (vtlookup_support/chunk.py says why)."""
        # A chunk allocates a million short-lived objects and keeps few: the cyclic collector's
        # passes over them cost ~15 % of a search (bench/splunk.py). Cycles wait for the end.
        gc.disable()
        try:
            table = chunk.Table(data[1], str(self.field), self._names)
            writer = self._record_writer
            for i, (rows, texts) in enumerate(table.batches(BATCH_ROWS)):
                if i == 0:  # like splunklib: no records, no header
                    writer.add(table.header_line(self._names))
                decode = self._decode_list
                if self.extract:
                    per_row = [self._values(table.values(r, decode)) for r in rows]
                else:
                    per_row = [table.values(r, decode) for r in rows]
                writer.add(table.lines(texts, self._tails(per_row)), len(rows))
            self._count("records", table.rows)
        finally:
            gc.enable()
        if self._finished:
            self._summary()

    def stream(self, records: Any) -> Any:
        raise RuntimeError("vtlookup needs protocol v2: set chunked = true in commands.conf")

    def _values(self, raw: List[str]) -> List[str]:
        if not self.extract:
            return raw
        from connectors.core.extract import extract

        found: List[str] = []
        emails = self._settings.privacy.extract_email_domains
        for text in raw:
            found.extend(o.value for o in extract(text, email_domains=emails))
        return list(dict.fromkeys(found))

    def _tails(self, per_row: List[List[str]]) -> List[str]:
        """Each row's encoded output columns. A distinct value is enriched and encoded once per
        batch; answers that will not change are kept for the rest of the search and, for a few
        minutes, for later searches on this search head."""
        known = self._known
        reused: Dict[str, Any] = {}  # value -> (verdict, columns) settled earlier
        single: Dict[str, None] = {}
        multi: Dict[str, None] = {}  # values of multivalue rows: combined, so always rendered
        for vs in per_row:
            if len(vs) == 1:
                if vs[0] in known:
                    reused[vs[0]] = known[vs[0]]
                else:
                    single[vs[0]] = None
            elif vs:
                multi.update(dict.fromkeys(vs))
        keys: Dict[str, str] = {}  # value -> cache key, for columns saved into the KV store
        lookup = not (self.nocache or self.rescan_after_days)
        newly: Dict[str, Any] = {}  # answers settled before but new to this search
        if single and lookup and self._answers is not None:
            kept = self._answers.get_many(v for v in single if v not in multi)
            self._remember(kept)
            newly.update(kept)
        rest = [v for v in single if v not in multi and v not in newly]
        newly.update(self._from_kv(rest, keys, lookup))
        reused.update(newly)
        ask = [v for v in {**single, **multi} if v in multi or v not in reused]
        # Values in _known were counted when they were settled.
        firsts = [v for v in newly if self._first(v)]
        verdicts = Counter(reused[v][0] for v in firsts)
        for v in firsts:
            if reused[v][0] in opstats.RISKY_VERDICTS:
                self._risky_reused(v, *reused[v])
        for verdict, n in verdicts.items():
            self._count(verdict, n)
        self._count("cache_hits", sum(verdicts.values()) - verdicts["skipped"])
        self._count("unique", sum(verdicts.values()))
        fresh: Dict[str, str] = {}
        rendered: Dict[str, Dict[str, Any]] = {}  # for multivalue rows only
        for i in range(0, len(ask), ENRICH_AT_ONCE):
            answers = self._enrich(ask[i : i + ENRICH_AT_ONCE])
            for v, enr in answers.items():
                d = fields.render(enr)
                fresh[v] = _columns(d)
                if v in multi:
                    rendered[v] = d
            self._keep(answers, fresh, keys)
        tails: List[str] = []
        for vs in per_row:
            if len(vs) == 1:
                tail = fresh.get(vs[0])
                tails.append(tail if tail is not None else reused[vs[0]][1])
            elif not vs:
                tails.append(self._empty_tail)
            else:
                tails.append(_columns(fields.combine([rendered[v] for v in vs])))
        return tails

    def _from_kv(self, values: List[str], keys: Dict[str, str], lookup: bool) -> Dict[str, Any]:
        """Answers whose KV store document carries columns rendered under these settings: no
        report decoding, policy or rendering. Only values the core would answer from the cache
        (valid, on no list, not kept private, no credentials removed, no rescan due) qualify;
        `keys` gets the cache key of each (also with `lookup` off: nocache, rescans), so that
        the columns of what the core answers go into the documents."""
        kv = self._kv
        core = self._settings
        if kv is None or kv.failed or core.policy.rescan_after_days or not values:
            return {}
        from vtlookup_support import canonical

        from connectors.core.observable import InvalidObservable, parse
        from connectors.core.privacy import skip_reason

        lists = self._enricher.lists
        by_key: Dict[str, List[str]] = {}
        for v in values:
            # A canonical domain's key is known without the public suffix check (canonical.py).
            obs = canonical.domain(v, self._kind)
            if obs is None:
                try:
                    obs = parse(v, self._kind)
                except InvalidObservable:
                    continue
            if obs.userinfo_removed or lists.match(obs) or skip_reason(obs, core.privacy):
                continue
            keys[v] = obs.cache_key
            by_key.setdefault(obs.cache_key, []).append(v)
        if not lookup:
            return {}
        found = kv.answers(by_key)
        out: Dict[str, Any] = {}
        later: Dict[str, Any] = {}
        now = time.time()
        for key, (verdict, columns, expires_at) in found.items():
            for v in by_key[key]:
                out[v] = (verdict, columns)
                later[v] = (verdict, columns, min(self._answers_ttl, expires_at - now))
        self._remember(out)
        if self._answers is not None and later:
            self._answers.put_many(later)
        if found:
            kv.count_hit("splunk", len(found), 0)
        return out

    def _keep(
        self, answers: Dict[str, Enrichment], fresh: Dict[str, str], keys: Dict[str, str]
    ) -> None:
        """Answers that will not change: for the rest of this search, and for later ones (the
        columns also go into the KV store documents, for searches on any search head)."""
        later: Dict[str, Any] = {}
        settled: Dict[str, Any] = {}
        shared: Dict[str, str] = {}
        for v, enr in answers.items():
            if enr.verdict in (Verdict.QUOTA, Verdict.ERROR):
                continue
            columns = fresh[v] if enr.cached or enr.verdict is Verdict.SKIPPED else _as_cached(enr)
            settled[v] = (enr.verdict.value, columns)
            if v in keys and enr.verdict is not Verdict.SKIPPED and not enr.stale:
                shared[keys[v]] = columns
            if self._answers is not None:
                ttl = self._answers_ttl
                if enr.verdict is not Verdict.SKIPPED:  # never longer than the cache keeps it
                    ttl = min(ttl, self._settings.cache.ttl_for(enr.verdict.value))
                later[v] = (enr.verdict.value, columns, ttl)
        self._remember(settled)
        if later:
            self._answers.put_many(later)
        if self._kv is not None:
            self._kv.attach(shared)

    def _remember(self, settled: Dict[str, Any]) -> None:
        for value, answer in settled.items():
            if len(self._known) >= MAX_KNOWN:
                return
            self._known[value] = answer

    def _enrich(self, values: List[str]) -> Dict[str, Enrichment]:
        from connectors.core.gateway import CredentialsRejected

        kwargs: Dict[str, Any] = {
            "kind": self._kind,
            "use_cache": not self.nocache,
            "rescan_after_days": self.rescan_after_days,
            "max_lookups": self._lookups_left,
        }
        if self._deadline_at is not None:
            kwargs["deadline"] = max(0.0, self._deadline_at - time.time())
        asked = True  # whether the core ran (and so may have called VirusTotal)
        try:
            if self._hub is not None:
                results = self._hub.enrich(values, self._kind, kwargs.get("deadline"))
            else:
                results = self._enricher.enrich_sync(values, **kwargs)
        except CredentialsRejected as exc:
            results = [_failed(v, "VirusTotal rejected the API key", exc) for v in values]
        except Exception as exc:  # never break the search: every value gets verdict=error
            log.exception("event=enrich_failed")
            results = [_failed(v, "lookup failed", exc) for v in values]
            asked = False
        out: Dict[str, Enrichment] = {}
        trouble: Dict[str, int] = {}
        calls = 0
        for value, enr in zip(values, results):
            out[value] = enr
            verdict = enr.verdict.value
            if not enr.cached and asked and verdict not in ("skipped", "quota"):
                calls += self._hub is None or verdict != "error"  # a hub's error: no call known
            if self._first(value):  # the summary counts distinct values per search
                self._count(verdict)
                self._count("unique")
                if enr.cached:
                    self._count("cache_hits")
            if verdict in ("quota", "error"):
                trouble[verdict] = trouble.get(verdict, 0) + 1
            if enr.is_risky:
                self._risky(enr.kind, enr.normalized, verdict, enr.score, enr.link)
        self._count("api_calls", calls)
        if self._lookups_left is not None:
            self._lookups_left = max(0, self._lookups_left - calls)
        if trouble and not self._warned:
            self._warned = True
            self.write_warning("{}", _trouble_message(trouble, results))
        return out

    # -- bookkeeping ------------------------------------------------------------------------
    def _risky(self, kind: str, value: str, verdict: str, score: int, link: str) -> None:
        """A malicious or suspicious indicator: logged and kept for the dashboards (at most
        [logging] max_risky_lines per search)."""
        if (kind, value) in self._risky_logged or len(self._risky_logged) >= self._max_risky:
            return
        self._risky_logged.add((kind, value))
        sid = self._sid()
        log.info(
            "event=risky sid=%s kind=%s value=%s verdict=%s score=%d link=%s",
            _q(sid), kind, _q(value), verdict, score, link,
        )  # fmt: skip
        self._risky_docs.append(
            opstats.risky_doc(
                sid, self._user(), time.time(), str(self.field), kind, value, verdict, score, link
            )
        )

    def _risky_reused(self, value: str, verdict: str, columns: str) -> None:
        """A risky answer settled earlier (this search or kept on this search head)."""
        if len(self._risky_logged) >= self._max_risky:
            return  # _risky would keep no more of this search's
        got = opstats.from_columns(columns)
        if got is None:
            return
        from vtlookup_support import canonical

        from connectors.core.observable import InvalidObservable, parse

        obs = canonical.domain(value, "domain") if got["kind"] == "domain" else None
        try:
            value = obs.value if obs is not None else parse(value, got["kind"] or None).value
        except InvalidObservable:
            pass
        self._risky(got["kind"], value, verdict, int(got["score"]), got["link"])

    def _user(self) -> str:
        return str(getattr(self._metadata.searchinfo, "username", ""))

    def _first(self, value: str) -> bool:
        """Whether this search's summary has not counted the value yet. Past MAX_SEEN distinct
        values each batch counts its own (the summary then says distinct_approximate=1)."""
        h = hash(value)
        if h in self._seen:
            return False
        if len(self._seen) < MAX_SEEN:
            self._seen.add(h)
        else:
            self._stats["distinct_approximate"] = 1
        return True

    def _count(self, name: str, n: int = 1) -> None:
        self._stats[name] = self._stats.get(name, 0) + n

    def _sid(self) -> str:
        return str(getattr(self._metadata.searchinfo, "sid", ""))

    def _summary(self) -> None:
        s = self._stats
        parts = " ".join(f"{k}={v}" for k, v in sorted(s.items()))
        kv = (
            " cache=hub" if self._hub is not None
            else "" if self._kv is None
            else " cache=kvstore" if not self._kv.failed
            else " cache=sqlite"
        )  # fmt: skip
        log.info(
            "event=summary sid=%s user=%s seconds=%.3f%s %s",
            _q(self._sid()),
            _q(getattr(self._metadata.searchinfo, "username", "")),
            time.time() - self._started,
            kv,
            parts,
        )
        service = self.service
        kv_ok = not (self._kv and self._kv.failed)
        if service is not None and self._settings is not None and kv_ok:
            limits = self._settings.quota.limits()
            stats = opstats.stats_doc(
                self._sid(), self._user(), time.time(), time.time() - self._started, s,
                "hub" if self._hub else "kvstore" if self._kv else "sqlite", limits,
            )  # fmt: skip
            opstats.save(service, APP, stats, self._risky_docs)
        if service is not None and self._es.enabled:
            trouble = es_intel.push(service, self._es, self._risky_docs, time.time())
            if trouble:
                self.write_warning("{}", trouble)
        if self._enricher is not None:
            self._enricher.close()
        if self._answers is not None:
            self._answers.close()


def _columns(rendered: Dict[str, Any]) -> str:
    """Rendered fields as the encoded output columns of a row (fields.NAMES order)."""
    return chunk.encode([rendered[n] for n in fields.NAMES])


def _as_cached(enr: Enrichment) -> str:
    """The columns a later answer from the cache shows: vt_cached=1."""
    return _columns(fields.render(replace(enr, cached=True)))


def _version() -> str:
    import configparser

    cp = configparser.ConfigParser(interpolation=None, strict=False)
    cp.read(os.path.join(APP_DIR, "default", "app.conf"), encoding="utf-8")
    return cp.get("launcher", "version", fallback="")


def _int(text: Optional[str]) -> int:
    try:
        return max(0, int(float(text or 0)))
    except ValueError:
        return 0


def _failed(value: str, why: str, exc: BaseException) -> Enrichment:
    code = getattr(exc, "code", "") or type(exc).__name__
    return Enrichment(value, "", Verdict.ERROR, reason=f"{why}: {code}", error=str(code))


def _trouble_message(trouble: Dict[str, int], results: List[Enrichment]) -> str:
    parts = []
    if trouble.get("quota"):
        parts.append(
            f"{trouble['quota']} indicator(s) not looked up: VirusTotal API quota or this "
            "search's max_lookups/deadline reached (vt_verdict=quota)"
        )
    if trouble.get("error"):
        reasons = sorted({r.reason for r in results if r.verdict is Verdict.ERROR})[:3]
        parts.append(
            f"{trouble['error']} lookup(s) failed (vt_verdict=error): {'; '.join(reasons)}"
        )
    return "vtlookup: " + "; ".join(parts) + ". Later chunks are not reported separately."


if __name__ == "__main__":
    dispatch(VTLookupCommand, sys.argv, sys.stdin, sys.stdout, __name__)
