"""The layering in DESIGN.md, checked: the core imports no adapter, no web server, no click and
no splunklib; adapters never import each other; the command line (connectors/cli/) and the
composition root (connectors/serve.py) sit on top, and only entry points import them."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ADAPTERS = {
    "webhook": ROOT / "connectors" / "webhook",
    "hub": ROOT / "connectors" / "hub",
    "emulator": ROOT / "connectors" / "emulator",
    "taxii": ROOT / "taxii",
    "splunk_app": ROOT / "splunk_app",
}
ADAPTER_MODULES = {
    "webhook": ("connectors.webhook",),
    "hub": ("connectors.hub",),
    "emulator": ("connectors.emulator",),
    "taxii": ("taxii",),
    "splunk_app": ("splunk_app", "vtlookup"),
}
CORE_FORBIDDEN = (
    "connectors.webhook",
    "connectors.hub",
    "connectors.emulator",
    "connectors.cli",
    "connectors.serve",
    "connectors.status",
    "connectors.connections",
    "connectors.request_bodies",
    "connectors.part_metrics",
    "taxii",
    "aiohttp.web",
    "click",
    "splunklib",
    "rich",
)


def imports(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            yield mod
            for alias in node.names:
                yield f"{mod}.{alias.name}"


def _hits(mod: str, prefixes) -> bool:
    return any(mod == p or mod.startswith(p + ".") for p in prefixes)


def test_core_imports_no_adapter():
    files = sorted((ROOT / "connectors" / "core").rglob("*.py"))
    assert files, "connectors/core has no modules"
    bad = [(f.name, m) for f in files for m in imports(f) if _hits(m, CORE_FORBIDDEN)]
    assert bad == []


@pytest.mark.parametrize("name", sorted(ADAPTERS))
def test_adapters_do_not_import_each_other(name):
    others = tuple(p for other, ps in ADAPTER_MODULES.items() if other != name for p in ps)
    files = sorted(ADAPTERS[name].rglob("*.py")) if ADAPTERS[name].exists() else []
    bad = [(str(f.relative_to(ROOT)), m) for f in files for m in imports(f) if _hits(m, others)]
    assert bad == []


# -- the top: entry points and the composition root ----------------------------------------
TOP = ("connectors.cli", "connectors.serve")
PRODUCT = [ROOT / "connectors", ROOT / "taxii", ROOT / "splunk_app", ROOT / "packaging"]


def _entry_point(path: Path) -> bool:
    """The command line package and `python -m` modules may import the top; nothing else."""
    rel = path.relative_to(ROOT).parts
    return rel[:2] == ("connectors", "cli") or path.name == "__main__.py"


def _top_importers():
    files = sorted(p for src in PRODUCT for p in src.rglob("*.py") if "lib" not in p.parts)
    for f in files:
        if _entry_point(f) or _module(f) == "connectors.serve":
            continue
        for m in imports(f):
            if _hits(m, TOP):
                yield str(f.relative_to(ROOT)), m


def test_only_entry_points_import_the_cli_or_serve():
    assert list(_top_importers()) == []


def test_the_cli_is_a_package_and_serve_stays_the_root():
    """The CLI is one package (one module per command group, its renderers inside), no
    connectors/cli_*.py beside it; `vtconnect` and `python -m connectors.cli` both start it."""
    cli = ROOT / "connectors" / "cli"
    names = {p.name for p in cli.glob("*.py")}
    assert {"__init__.py", "__main__.py", "root.py", "render.py"} <= names
    assert sorted(p.name for p in (ROOT / "connectors").glob("cli*.py")) == []
    assert not (ROOT / "connectors" / "formats.py").exists()  # only webhook/formats.py (alerts)
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'vtconnect = "connectors.cli:main"' in text


# Top-level modules the adapters may share (HTTP body reading, a part's Prometheus metrics);
# they sit below every adapter.
SHARED_HELPERS = ("connectors.request_bodies", "connectors.part_metrics")


def test_adapters_share_only_helpers_that_sit_below_them():
    own = {"connectors.core", *SHARED_HELPERS, *TOP}
    reached = set()
    for name, folder in ADAPTERS.items():
        for f in sorted(folder.rglob("*.py")) if folder.exists() else []:
            for m in imports(f):
                top = ".".join(m.split(".")[:2])
                if m.startswith("connectors.") and not _hits(top, (*ADAPTER_MODULES[name], *own)):
                    reached.add((str(f.relative_to(ROOT)), top))
    assert reached == set()  # anything else is another adapter (caught above) or a new helper
    for helper in SHARED_HELPERS:
        path = ROOT / Path(*helper.split(".")).with_suffix(".py")
        below = [m for m in imports(path) if m.startswith("connectors.")]
        assert all(_hits(m, ("connectors.core",)) for m in below), (helper, below)


def test_top_checker_sees_a_violation():
    f = ROOT / "connectors" / "hub" / "_probe_top.py"
    try:
        f.write_text("from ..cli.render import rows\nfrom connectors import serve\n")
        found = sorted(m for path, m in _top_importers() if path.endswith("_probe_top.py"))
        assert "connectors.cli.render" in found and "connectors.serve" in found
    finally:
        f.unlink()


def test_checker_sees_a_violation(tmp_path):
    # The check must be able to fail: a relative import of an adapter is resolved and caught.
    f = ROOT / "connectors" / "core" / "_probe_violation.py"
    try:
        f.write_text("from ..webhook import app\n")
        assert any(_hits(m, CORE_FORBIDDEN) for m in imports(f))
    finally:
        f.unlink()


# -- storage: interface and backends side by side, the driver in one place ---------------------
STORES = {
    "connectors.core.ledger": ROOT / "connectors" / "core" / "ledger",
    "connectors.core.store": ROOT / "connectors" / "core" / "store",
    "taxii.store": ROOT / "taxii" / "store",
    "connectors.webhook.outbox": ROOT / "connectors" / "webhook" / "outbox",
}
SOURCES = [ROOT / "connectors", ROOT / "taxii"]


def _module(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


@pytest.mark.parametrize("package", sorted(STORES))
def test_store_packages_hold_an_interface_and_two_backends(package):
    folder = STORES[package]
    assert {p.name for p in folder.glob("*.py")} >= {"__init__.py", "sqlite.py", "postgres.py"}
    web = ("aiohttp", "click", "rich", "splunklib")  # storage knows no web framework or CLI
    bad = [(f.name, m) for f in sorted(folder.glob("*.py")) for m in imports(f) if _hits(m, web)]
    assert bad == []


def test_backends_are_chosen_by_their_package_only():
    """Callers go through the package's factory; only `vtconnect db` (which lists every
    schema) names a PostgreSQL backend."""
    backends = tuple(f"{pkg}.{name}" for pkg in STORES for name in ("sqlite", "postgres"))
    allowed = {"connectors.cli.db"}
    bad = []
    for f in sorted(p for src in SOURCES for p in src.rglob("*.py")):
        mod = _module(f)
        if any(mod.startswith(pkg) for pkg in STORES) or mod in allowed:
            continue
        bad += [(mod, m) for m in imports(f) if _hits(m, backends)]
    assert bad == []


def test_the_driver_is_imported_in_one_place_and_lazily():
    users = sorted(
        _module(f)
        for src in SOURCES
        for f in src.rglob("*.py")
        if any(_hits(m, ("psycopg", "psycopg_pool")) for m in imports(f))
    )
    assert users == ["connectors.core.database"]
    tree = ast.parse((ROOT / "connectors" / "core" / "database.py").read_text(encoding="utf-8"))
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert not [n for n in top if any(_hits(m, ("psycopg",)) for m in _names(n))]


def _names(node):
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    return [node.module or ""]


def test_sqlite_users_need_no_driver():
    """Without psycopg installed, the core, both stores and both servers still import and open
    their SQLite backends."""
    import subprocess
    import sys

    code = (
        "import sys, tempfile, pathlib; sys.modules['psycopg'] = None; "
        "sys.modules['psycopg_pool'] = None\n"
        "import connectors.core.database, connectors.core.config, taxii.server, "
        "connectors.webhook.app\n"
        "from taxii.store import open_store\n"
        "from connectors.webhook.outbox import open_outbox\n"
        "from connectors.core.ledger import open_ledger\n"
        "d = pathlib.Path(tempfile.mkdtemp())\n"
        "open_store(d / 't.db').close(); open_outbox(d / 'w.db').close()\n"
        "led = open_ledger(d / 'q.db'); led.write('k', lambda b: b.record(1.0, 'd')); led.close()\n"
        "from connectors.core.config import ConfigError\n"
        "try:\n    open_store('postgresql://x/y')\nexcept ConfigError as e:\n    print(e)\n"
        "try:\n    open_ledger('postgresql://x/y')\nexcept ConfigError as e:\n    print(e)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("psycopg is not installed") == 2


# -- the receiver, by concept --------------------------------------------------------------
WEBHOOK = ROOT / "connectors" / "webhook"


def test_the_receiver_is_assembled_in_app_only():
    """receiver.py (HTTP), worker.py (jobs), callbacks.py (delivery) and block.py (the block an
    alert gets) are separate; only app.py puts the loops beside the routes, and the block and
    the loops know no web server."""
    users = {
        f.name
        for f in sorted(WEBHOOK.glob("*.py"))
        for m in imports(f)
        if _hits(m, ("connectors.webhook.worker", "connectors.webhook.callbacks"))
    }
    assert users == {"app.py"}
    for name in ("block.py", "worker.py", "callbacks.py"):
        assert not [m for m in imports(WEBHOOK / name) if _hits(m, ("aiohttp.web",))], name
    assert not [m for m in imports(WEBHOOK / "block.py") if _hits(m, ("aiohttp",))]
