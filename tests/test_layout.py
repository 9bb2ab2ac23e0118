"""The package layout is the architecture: `leakmap/web` sits on top, nothing below imports it.

Every module under leakmap/ is parsed (not imported) and its imports resolved, relative ones
included. A module outside leakmap/web may not import leakmap.web, nor name a leakmap.web module
in a string (importlib, mock targets, dotted paths). The only exceptions are config/settings.py
and config/urls.py: they are the top of the tree and wire the web app in by name
(INSTALLED_APPS, middleware, context processors, include("leakmap.web.urls")).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "leakmap"
WEB = "leakmap.web"
# The top of the tree: these may name leakmap.web in strings (never import it).
MAY_NAME_WEB = {"leakmap/config/settings.py", "leakmap/config/urls.py"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_web(name: str) -> bool:
    return name == WEB or name.startswith(WEB + ".")


def imported_names(path: Path, tree: ast.AST) -> list[tuple[int, str]]:
    """(line, dotted name) of every import in the module, relative imports resolved."""
    package = module_name(path)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    names: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if is_web(module):
                names.append((node.lineno, module))
            else:  # `from leakmap import web` names the package in the alias.
                names.extend((node.lineno, f"{module}.{alias.name}") for alias in node.names)
    return names


def web_references(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    relative = path.relative_to(PACKAGE.parent).as_posix()
    found = [
        f"{relative}:{line}: imports {name}"
        for line, name in imported_names(path, tree)
        if is_web(name)
    ]
    if relative not in MAY_NAME_WEB:
        found.extend(
            f"{relative}:{node.lineno}: names {node.value!r}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and is_web(node.value)
        )
    return found


def test_nothing_below_web_imports_it():
    modules = [path for path in sorted(PACKAGE.rglob("*.py")) if not is_web(module_name(path))]
    assert len(modules) > 50  # the walk found the package
    offences = [line for path in modules for line in web_references(path)]
    assert offences == []


def test_it_resolves_every_form_of_import(tmp_path, monkeypatch):
    """The check itself: absolute, `from leakmap import web`, relative, and a dotted string."""
    root = tmp_path / "leakmap"
    (root / "crm").mkdir(parents=True)
    monkeypatch.setattr(f"{__name__}.PACKAGE", root)
    sources = {
        "import leakmap.web.server": ["imports leakmap.web.server"],
        "from leakmap import web": ["imports leakmap.web"],
        "from ..web.server import run_server": ["imports leakmap.web.server"],
        "from .. import web": ["imports leakmap.web"],
        "mock.patch('leakmap.web.server.run_server')": ["names 'leakmap.web.server.run_server'"],
        "from leakmap.config import jobs": [],
        "salt = 'leakmap.webform'": [],
    }
    for source, expected in sources.items():
        module = root / "crm" / "example.py"
        module.write_text(source + "\n")
        assert [f.split(": ", 1)[1] for f in web_references(module)] == expected, source
