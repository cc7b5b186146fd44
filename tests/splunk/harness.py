"""Plays splunkd for bin/vtlookup.py: the search command protocol v2 over the command's
stdin/stdout, and a loopback fake of the splunkd REST endpoints the command calls
(configs/conf-vtlookup, storage/passwords, KV store batch_find/batch_save/query).

Used by tests/splunk, bench/splunk.py and the demo (packaging/splunk_demo.py loads it by path).
"""

from __future__ import annotations

import configparser
import csv
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union
from urllib.parse import parse_qs, unquote, urlsplit

HEADER = re.compile(rb"chunked 1\.0,(\d+),(\d+)\n")
SESSION_KEY = "fake-session-key-0123456789"  # an admin's session
ANALYST_KEY = "fake-session-analyst-0123456789"  # roles user + vtconnect_user
USER_KEY = "fake-session-user-0123456789"  # role user only
SYSTEM_KEY = "fake-system-token-0123456789"  # what splunkd hands passSystemAuth handlers
ADMIN_CAPS = [
    "admin_all_objects", "list_storage_passwords", "search", "rest_properties_get",
    "edit_threat_intel_collections",  # Splunk ES's capability (its threat intelligence API)
]  # fmt: skip
# Splunk ES's threat intelligence API: the collections it accepts (ES REST API reference).
ES_COLLECTIONS = (
    "ip_intel", "file_intel", "user_intel", "http_intel", "email_intel", "service_intel",
    "process_intel", "registry_intel", "certificate_intel",
)  # fmt: skip
USERS: Dict[str, Dict[str, Any]] = {
    SESSION_KEY: {"username": "admin", "roles": ["admin"], "capabilities": ADMIN_CAPS},
    ANALYST_KEY: {
        "username": "analyst",
        "roles": ["user", "vtconnect_user"],
        "capabilities": ["search", "vtconnect_use_key"],
    },
    USER_KEY: {"username": "plain", "roles": ["user"], "capabilities": ["search"]},
    SYSTEM_KEY: {"username": "splunk-system-user", "roles": ["admin"], "capabilities": ADMIN_CAPS},
}
# Runs one request through an app's persistent REST handler, as splunkd's persistconn does.
HANDLER_DRIVER = (
    "import json, sys; sys.path.insert(0, '.'); mod = __import__(sys.argv[1]); "
    "out = getattr(mod, sys.argv[2])('', None).handle(sys.stdin.read()); "
    "sys.stdout.write(json.dumps(out))"
)
csv.field_size_limit(2**31 - 1)  # splunkd has no 128 KB field limit; events can be larger
Record = Dict[str, Union[str, List[str]]]
NO_MATCH = "No matching entries found in kvstore."  # ES's answer when no row matches


# -- the REST side ---------------------------------------------------------------------------
class FakeSplunkd:
    """The splunkd REST endpoints vtlookup uses, on 127.0.0.1:<ephemeral>, JSON only."""

    def __init__(
        self,
        conf: Optional[Dict[str, Dict[str, str]]] = None,
        passwords: Optional[Dict[str, str]] = None,
        app: str = "vtconnect",
        app_dir: Optional[Path] = None,
        python: str = sys.executable,
    ) -> None:
        """With app_dir, the app's metadata/default.meta ACLs apply to its KV store collections
        and its restmap.conf endpoints run its handlers (with `python`), as in splunkd."""
        self.app = app
        self.app_dir = Path(app_dir) if app_dir else None
        self.python = python
        self.conf = conf if conf is not None else {}
        # No conf but an app: vtlookup.conf is the app's default/ and local/ files, and
        # configuration writes land in local/, as splunkd does it.
        self.conf_from_app = conf is None and app_dir is not None
        self.passwords = dict(passwords or {})  # username -> password, realm = app
        self.kv: Dict[str, Dict[str, Dict[str, Any]]] = {}  # collection -> _key -> doc
        self.kv_down = False  # answer 503 on KV store endpoints
        self.calls: List[Tuple[str, str]] = []
        # Splunk ES (SA-ThreatIntelligence) on this search head: collection -> _key -> row;
        # None: ES not installed, its endpoints answer splunkd's 404.
        self.es: Optional[Dict[str, Dict[str, Dict[str, Any]]]] = None
        self.es_calls: List[Tuple[str, str, Any]] = []  # (method, full path, item) to ES
        self.handler_errors: List[str] = []  # stderr of handlers that died
        self.lock = threading.Lock()
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    @property
    def uri(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> str:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake._handle(self, "GET")

            def do_POST(self) -> None:
                fake._handle(self, "POST")

            def do_PUT(self) -> None:
                fake._handle(self, "PUT")

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self.uri

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeSplunkd:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def count(self, endpoint: str) -> int:
        with self.lock:
            return sum(1 for _, path in self.calls if path.endswith(endpoint))

    # -- request handling -----------------------------------------------------------------
    def _handle(self, req: BaseHTTPRequestHandler, method: str) -> None:
        url = urlsplit(req.path)
        length = int(req.headers.get("Content-Length") or 0)
        body = req.rfile.read(length) if length else b""
        m = re.match(r"^/(?:services|servicesNS/[^/]+/[^/]+)/(.*)$", url.path)
        path = unquote(m.group(1)) if m else url.path
        with self.lock:
            self.calls.append((method, path))
        token = str(req.headers.get("Authorization") or "")
        user = USERS.get(token[7:] if token.startswith("Splunk ") else token)
        if user is None:
            return self._reply(req, 401, {"messages": [{"type": "ERROR", "text": "auth"}]})
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        form: List[List[str]] = []
        kind = req.headers.get("Content-Type", "")
        form_body = not kind or kind.startswith("application/x-www-form-urlencoded")
        if method in ("POST", "PUT") and form_body:
            # splunklib sends form bodies without a Content-Type; splunkd reads them as forms
            pairs = parse_qs(body.decode(), keep_blank_values=True).items()
            form = [[k, v] for k, vs in pairs for v in vs]
            query.update({k: v for k, v in form})
        try:
            handler = self._handler_for(path)
            if handler is not None:
                status, doc = self._run_handler(handler, method, path, url.query, body, token)
            elif path.startswith("data/threat_intel/"):
                status, doc = self._es(method, unquote(url.path), path, query, user)
            else:
                status, doc = self._route(method, path, query, body, user)
        except (ValueError, KeyError, TypeError) as exc:
            status, doc = 400, {"messages": [{"type": "ERROR", "text": str(exc)}]}
        self._reply(req, status, doc)

    def _route(
        self, method: str, path: str, query: Dict[str, str], body: bytes, user: Dict[str, Any]
    ) -> Tuple[int, Any]:
        if path == "authentication/current-context" and method == "GET":
            return 200, {"entry": [{"name": "tokens", "content": dict(user)}]}
        if path == "configs/conf-vtlookup" and method == "GET":
            conf = self._app_conf("vtlookup.conf") if self.conf_from_app else self.conf
            entries = [
                {"name": name, "content": {**content, "disabled": False, "eai:appName": self.app}}
                for name, content in conf.items()
            ]
            return 200, {"entry": entries}
        m = re.match(r"^configs/conf-vtlookup/([^/]+)$", path)
        if m and method == "POST":
            _, write = self.acl("vtlookup")
            if "*" not in write and not set(user["roles"]) & set(write):
                return 403, _denied(user, "write access to vtlookup.conf")
            changes = {k: v for k, v in query.items() if k != "output_mode"}
            self._write_conf(m.group(1), changes)
            return 200, {"entry": [{"name": m.group(1), "content": changes}]}
        if path == "storage/passwords" and method == "GET":
            if not {"list_storage_passwords", "admin_all_objects"} & set(user["capabilities"]):
                return 403, _denied(user, "list_storage_passwords")
            realm = query.get("search", "").partition("realm=")[2] or None
            entries = [
                {
                    "name": f"{self.app}:{user}:",
                    "content": {"realm": self.app, "username": user, "clear_password": pw},
                }
                for user, pw in self.passwords.items()
                if realm in (None, self.app)
            ]
            return 200, {"entry": entries}
        m = re.match(r"^storage/collections/data/([^/]+)/?(batch_find|batch_save|[^/]+)?$", path)
        if m:
            if self.kv_down:
                return 503, {"messages": [{"type": "ERROR", "text": "KV Store is not ready"}]}
            read, write = self.acl(f"collections/{m.group(1)}")
            allowed = write if method == "POST" and m.group(2) != "batch_find" else read
            if "*" not in allowed and not set(user["roles"]) & set(allowed):
                return 403, _denied(user, f"{'write' if allowed is write else 'read'} access")
            with self.lock:
                coll = self.kv.setdefault(m.group(1), {})
                return self._kv(coll, m.group(2) or "", method, query, body)
        return 404, {"messages": [{"type": "ERROR", "text": f"no such endpoint {path}"}]}

    def _kv(
        self,
        coll: Dict[str, Dict[str, Any]],
        op: str,
        method: str,
        query: Dict[str, str],
        body: bytes,
    ) -> Tuple[int, Any]:
        if op == "batch_save" and method == "POST":
            docs = json.loads(body)
            if not isinstance(docs, list) or len(docs) > 1000:
                return 400, {"messages": [{"type": "ERROR", "text": "bad batch"}]}
            for doc in docs:
                coll[str(doc["_key"])] = dict(doc)
            return 200, [str(d["_key"]) for d in docs]
        if op == "batch_find" and method == "POST":
            queries = json.loads(body)
            if not isinstance(queries, list) or len(queries) > 1000:
                return 400, {"messages": [{"type": "ERROR", "text": "bad batch"}]}
            return 200, [
                _project(_find(coll, q.get("query") or {}), q.get("fields") or "") for q in queries
            ]
        if op == "" and method == "GET":
            found = _find(coll, json.loads(query.get("query") or "{}"))
            return 200, _project(found, query.get("fields") or "")
        if op not in ("", "batch_find", "batch_save") and method == "GET":  # one document
            if op in coll:
                return 200, coll[op]
            return 404, {"messages": [{"type": "ERROR", "text": "Could not find object."}]}
        return 405, {"messages": [{"type": "ERROR", "text": "method not allowed"}]}

    def _es(
        self, method: str, full: str, path: str, query: Dict[str, str], user: Dict[str, Any]
    ) -> Tuple[int, Any]:
        """ES's /services/data/threat_intel/item/{collection}[/{item_key}] as its REST API
        reference describes it: form field `item` (JSON), answers {"message", "status"}."""
        item = json.loads(query["item"]) if "item" in query else None
        with self.lock:
            self.es_calls.append((method, full, item))
        m = re.match(r"^data/threat_intel/item/([^/]+)(?:/([^/]+))?$", path)
        if self.es is None or not m:
            return 404, {"messages": [{"type": "ERROR", "text": "Not Found"}]}
        if "edit_threat_intel_collections" not in user["capabilities"]:
            return 403, _denied(user, "edit_threat_intel_collections")
        name, key = m.group(1), m.group(2)
        if name not in ES_COLLECTIONS:
            return 400, {"message": f"Invalid collection {name}", "status": False}
        with self.lock:
            coll = self.es.setdefault(name, {})
            if method == "GET" and key is None:
                if not isinstance(item, dict) or not item:
                    return 400, {"message": "item is required", "status": False}
                found = [r for r in coll.values() if item.items() <= r.items()]
                if not found:
                    return 200, {"message": NO_MATCH, "status": False}
                return 200, {"message": found, "status": True}
            if method == "POST" and key is None:
                rows = item if isinstance(item, list) else [item]
                if not rows or not all(isinstance(r, dict) and r for r in rows):
                    return 400, {"message": "item is required", "status": False}
                for row in rows:
                    new_key = f"{row.get('threat_key', '')}:{len(coll)}"
                    coll[new_key] = {**row, "_key": new_key, "_user": "nobody"}
                return 201, {"message": f"Created {len(rows)} item(s)", "status": True}
            if method == "PUT" and key is not None:
                if key not in coll:
                    return 404, {"message": NO_MATCH, "status": False}
                if not isinstance(item, dict):
                    return 400, {"message": "item is required", "status": False}
                coll[key] = {**coll[key], **item, "_key": key}
                return 200, {"message": "Updated item", "status": True}
        return 405, {"message": "method not allowed", "status": False}

    # -- the app's side: metadata ACLs and REST handlers -------------------------------------
    def _app_conf(self, name: str) -> Dict[str, Dict[str, str]]:
        if self.app_dir is None:
            return {}
        cp = configparser.ConfigParser(interpolation=None, strict=False)
        cp.optionxform = str  # type: ignore[assignment,method-assign]
        for sub in ("default", "local"):
            cp.read(self.app_dir / sub / name, encoding="utf-8")
        return {s: dict(cp[s]) for s in cp.sections()}

    def _write_conf(self, stanza: str, changes: Dict[str, str]) -> None:
        with self.lock:
            self.conf.setdefault(stanza, {}).update(changes)
            if self.app_dir is None:
                return
            path = self.app_dir / "local" / "vtlookup.conf"
            cp = configparser.ConfigParser(interpolation=None, strict=False)
            cp.optionxform = str  # type: ignore[assignment,method-assign]
            cp.read(path, encoding="utf-8")
            if not cp.has_section(stanza):
                cp.add_section(stanza)
            for k, v in changes.items():
                cp.set(stanza, k, v)
            path.parent.mkdir(exist_ok=True)
            with open(path, "w", encoding="utf-8") as fh:
                cp.write(fh)

    def acl(self, obj: str) -> Tuple[List[str], List[str]]:
        """(read roles, write roles) of an app object from metadata/*.meta; * without app_dir."""
        if self.app_dir is None:
            return ["*"], ["*"]
        sections: Dict[str, str] = {}  # stanza -> access (.meta files: [] is the app's default)
        for name in ("default.meta", "local.meta"):
            path = self.app_dir / "metadata" / name
            section = ""
            for line in path.read_text(encoding="utf-8").splitlines() if path.exists() else []:
                line = line.strip()
                if line.startswith("[") and line.endswith("]"):
                    section = unquote(line[1:-1])
                elif line.startswith("access") and "=" in line:
                    sections[section] = line.partition("=")[2]
        access = ""
        for section in ("", obj.split("/")[0], obj):
            access = sections.get(section, access)
        perms = {"read": [], "write": []}  # type: Dict[str, List[str]]
        for part in re.finditer(r"(read|write)\s*:\s*\[([^\]]*)\]", access):
            perms[part.group(1)] = [r.strip() for r in part.group(2).split(",") if r.strip()]
        return perms["read"], perms["write"]

    def _handler_for(self, path: str) -> Optional[Dict[str, str]]:
        for name, stanza in self._app_conf("restmap.conf").items():
            if name.startswith("script:") and stanza.get("match", "").strip("/") == path:
                return {"name": name, **stanza}
        return None

    def _run_handler(
        self, stanza: Dict[str, str], method: str, path: str, query: str, body: bytes, token: str
    ) -> Tuple[int, Any]:
        assert self.app_dir is not None
        session = token[7:] if token.startswith("Splunk ") else token
        request = {
            "method": method,
            "path_info": "",
            "rest_path": "/" + path,
            "query": [[k, v] for k, vs in parse_qs(query).items() for v in vs],
            "form": [],
            "payload": body.decode("utf-8", "replace") if stanza.get("passPayload") else "",
            "session": {"user": USERS[session]["username"], "authtoken": session},
            "server": {"rest_uri": self.uri, "hostname": "fake", "servername": "fake"},
            "ns": {"app": self.app, "user": "nobody"},
            "output_mode": "json",
        }
        if stanza.get("passSystemAuth", "").strip().lower() == "true":
            request["system_authtoken"] = SYSTEM_KEY
        module, _, cls = stanza["handler"].rpartition(".")
        proc = subprocess.run(
            [self.python, "-c", HANDLER_DRIVER, module, cls],
            input=json.dumps(request).encode(),
            capture_output=True,
            cwd=str(self.app_dir / "bin"),
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"},
            timeout=60,
        )
        if proc.returncode != 0:  # splunkd answers 500 when a handler dies
            self.handler_errors.append(proc.stderr.decode("utf-8", "replace"))
            return 500, {"messages": [{"type": "ERROR", "text": "handler failed"}]}
        out = json.loads(proc.stdout)
        return int(out.get("status", 200)), json.loads(out.get("payload") or "null")

    @staticmethod
    def _reply(req: BaseHTTPRequestHandler, status: int, doc: Any) -> None:
        data = json.dumps(doc).encode()
        req.send_response(status)
        req.send_header("Content-Type", "application/json; charset=UTF-8")
        req.send_header("Content-Length", str(len(data)))
        req.send_header("Connection", "Keep-Alive")  # as splunkd does; splunklib relies on it
        req.end_headers()
        req.wfile.write(data)


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a command exiting mid keep-alive
            super().handle_error(request, client_address)


def _denied(user: Dict[str, Any], what: str) -> Dict[str, Any]:
    text = f"You (user={user['username']}) do not have permission (requires {what})"
    return {"messages": [{"type": "ERROR", "text": text}]}


def _find(coll: Dict[str, Dict[str, Any]], query: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The subset of KV store query syntax vtlookup uses: {}, {"_key": k}, {"$or": [...]}."""
    if not query:
        return list(coll.values())
    if "$or" in query:
        keys = [q["_key"] for q in query["$or"]]
    elif "_key" in query:
        keys = [query["_key"]]
    else:
        raise ValueError(f"unsupported query {query}")
    return [coll[k] for k in keys if k in coll]


def _project(docs: List[Dict[str, Any]], fields: str) -> List[Dict[str, Any]]:
    """splunkd's `fields`: comma-separated names to include (name or name:1) or to exclude
    (name:0), never both except _key:0; _key comes along unless excluded."""
    if not fields:
        return docs
    include, exclude = set(), set()
    for part in fields.split(","):
        name, _, flag = part.strip().partition(":")
        if flag not in ("", "0", "1"):
            raise ValueError(f"bad fields {fields!r}")
        (exclude if flag == "0" else include).add(name)
    if include and exclude - {"_key"}:
        raise ValueError(f"fields {fields!r} both includes and excludes")
    if include:
        keep = include | ({"_key"} - exclude)
        return [{k: v for k, v in d.items() if k in keep} for d in docs]
    return [{k: v for k, v in d.items() if k not in exclude} for d in docs]


# -- the protocol side -----------------------------------------------------------------------
def encode_chunk(metadata: Dict[str, Any], body: bytes = b"") -> bytes:
    meta = json.dumps(metadata).encode()
    return b"chunked 1.0,%d,%d\n" % (len(meta), len(body)) + meta + body


def records_to_csv(records: Sequence[Record]) -> bytes:
    """splunkd's CSV: every field X has a __mv_X twin, CRLF line ends, multivalues as
    "a\\nb" in X and "$a$;$b$" in __mv_X."""
    names: List[str] = []
    for r in records:
        for k in r:
            if k not in names:
                names.append(k)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow([c for n in names for c in (n, "__mv_" + n)])
    for r in records:
        row: List[str] = []
        for n in names:
            v = r.get(n, "")
            if isinstance(v, list):
                row += ["\n".join(v), "$" + "$;$".join(x.replace("$", "$$") for x in v) + "$"]
            else:
                row += [v, ""]
        w.writerow(row)
    return buf.getvalue().encode("utf-8")


def _decode_mv(text: str) -> List[str]:
    return [x.replace("$$", "$") for x in re.findall(r"\$((?:[^$]|\$\$)*)\$(?:;|$)", text)]


def csv_to_records(body: bytes) -> List[Record]:
    if not body:
        return []
    rows = list(csv.reader(io.StringIO(body.decode("utf-8"), newline="")))
    header, out = rows[0], []
    for values in rows[1:]:
        rec: Record = {}
        for name, value in zip(header, values):
            if name.startswith("__mv_"):
                if value:
                    rec[name[5:]] = _decode_mv(value)
            elif name not in rec:
                rec[name] = value
        out.append(rec)
    return out


def searchinfo(
    args: Sequence[str], splunkd_uri: str, dispatch_dir: str, session_key: str = SESSION_KEY
) -> Dict[str, Any]:
    search = "search index=proxy | vtlookup " + " ".join(args)
    user = USERS[session_key]["username"]
    return {
        "args": list(args),
        "raw_args": list(args),
        "dispatch_dir": dispatch_dir,
        "sid": "1700000000.42",
        "app": "search",
        "owner": user,
        "username": user,
        "session_key": session_key,
        "splunkd_uri": splunkd_uri,
        "splunk_version": "9.4.1",
        "search": search.replace(" ", "%20").replace("|", "%7C").replace("=", "%3D"),
        "command": "vtlookup",
        "maxresultrows": 50000,
        "earliest_time": "0",
        "latest_time": "0",
    }


class Reply:
    def __init__(self, header: bytes, metadata: Dict[str, Any], body: bytes) -> None:
        self.header, self.metadata, self.body = header, metadata, body

    @property
    def records(self) -> List[Record]:
        return csv_to_records(self.body)

    @property
    def messages(self) -> List[List[str]]:
        return list((self.metadata.get("inspector") or {}).get("messages", []))


class CommandProcess:
    """bin/<script> of an app, launched as splunkd does: `python script` with no argv."""

    def __init__(
        self,
        app_dir: Path,
        python: str = sys.executable,
        env: Optional[Dict[str, str]] = None,
        script: str = "vtlookup.py",
    ) -> None:
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the process)
        self.proc = subprocess.Popen(
            [python, str(Path(app_dir) / "bin" / script)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            cwd=str(Path(app_dir) / "bin"),
            env=env,
        )

    def send(self, metadata: Dict[str, Any], body: bytes = b"") -> Reply:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write(encode_chunk(metadata, body))
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass  # the reply (or its absence) says why
        return self.read()

    def read(self) -> Reply:
        assert self.proc.stdout is not None
        header = self.proc.stdout.readline()
        m = HEADER.fullmatch(header)
        if not m:
            raise ProtocolError(
                f"bad reply header {header[:200]!r}; stderr: {self.stderr()[-2000:]}"
            )
        meta = self.proc.stdout.read(int(m.group(1)))
        body = self.proc.stdout.read(int(m.group(2)))
        return Reply(header, json.loads(meta), body)

    def getinfo(self, info: Dict[str, Any]) -> Reply:
        return self.send({"action": "getinfo", "preview": False, "searchinfo": info})

    def execute(self, records: Sequence[Record], finished: bool = False) -> Reply:
        return self.execute_raw(records_to_csv(records), finished)

    def execute_raw(self, body: bytes, finished: bool = False) -> Reply:
        return self.send({"action": "execute", "finished": finished}, body)

    def close(self, timeout: float = 30) -> int:
        if self.proc.stdin and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        return rc

    def stderr(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace")


class ProtocolError(AssertionError):
    pass


def run_search(
    app_dir: Path,
    splunkd: FakeSplunkd,
    args: Sequence[str],
    chunks: Sequence[Sequence[Record]],
    *,
    python: str = sys.executable,
    env: Optional[Dict[str, str]] = None,
    dispatch_dir: Optional[str] = None,
    session_key: str = SESSION_KEY,
) -> Tuple[Reply, List[Reply], int]:
    """One search: getinfo, then one execute per chunk (the last says finished).
    Returns (getinfo reply, execute replies, exit code)."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = CommandProcess(app_dir, python, env=env)
        try:
            info = cmd.getinfo(searchinfo(args, splunkd.uri, dispatch_dir or tmp, session_key))
            replies: List[Reply] = []
            failed = any(m[0] in ("ERROR", "FATAL") for m in info.messages)
            if info.metadata.get("finished") is not True and not failed:
                for i, chunk in enumerate(chunks):
                    replies.append(cmd.execute(chunk, finished=i == len(chunks) - 1))
        finally:
            rc = cmd.close()
        return info, replies, rc


def command_env(splunk_home: Path, extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """A clean environment like splunkd's: SPLUNK_HOME set, nothing of ours on the path."""
    (splunk_home / "var" / "log" / "splunk").mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "SPLUNK_HOME": str(splunk_home),
        "LANG": "C.UTF-8",
        "PYTHONIOENCODING": "utf-8",
    }
    env.update(extra or {})
    return env
