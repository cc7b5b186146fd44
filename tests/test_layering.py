"""The layering in DESIGN.md, checked: the core imports no adapter, no web server, no click and
no splunklib; adapters never import each other."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ADAPTERS = {
    "webhook": ROOT / "connectors" / "webhook",
    "emulator": ROOT / "connectors" / "emulator",
    "taxii": ROOT / "taxii",
    "splunk_app": ROOT / "splunk_app",
}
ADAPTER_MODULES = {
    "webhook": ("connectors.webhook",),
    "emulator": ("connectors.emulator",),
    "taxii": ("taxii",),
    "splunk_app": ("splunk_app", "vtlookup"),
}
CORE_FORBIDDEN = (
    "connectors.webhook",
    "connectors.emulator",
    "connectors.cli",
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


def test_checker_sees_a_violation(tmp_path):
    # The check must be able to fail: a relative import of an adapter is resolved and caught.
    f = ROOT / "connectors" / "core" / "_probe_violation.py"
    try:
        f.write_text("from ..webhook import app\n")
        assert any(_hits(m, CORE_FORBIDDEN) for m in imports(f))
    finally:
        f.unlink()
