"""docs/architecture.md matches the tree: every module is on the map, and every
import between packages is one that its table allows."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "secfepas_sdk"
DOC = (ROOT / "docs" / "architecture.md").read_text()
GROUND = {"errors", "logsafe", "_extras", "retry", "certs"}


def _allowed() -> dict[str, set[str]]:
    """The 'may import' column, per package (``ground`` and ``everything above`` expanded)."""
    table: dict[str, set[str]] = {}
    for row in re.findall(r"^\| (`[^|]+`) \| ([^|]+) \| [^|]* \|$", DOC, re.M):
        names = re.findall(r"`([\w/*]+)`", row[0])
        targets = set(re.findall(r"`(?:secfepas_sdk\.)?(\w+)`", row[1]))
        if "ground" in row[1]:
            targets |= GROUND
        if "everything above" in row[1]:
            targets |= {p.stem for p in PACKAGE.iterdir() if not p.name.startswith("__")}
        for name in names:
            table[name] = targets
    return table


def _imports(path: Path) -> set[str]:
    """The top-level secfepas_sdk packages a module imports (absolute imports)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "secfepas_sdk" and len(parts) > 1:
                found.add(parts[1])
    return found


def _known_exceptions() -> set[str]:
    """Imports the map lists as known exceptions: ``file`` imports ``package``."""
    text = (
        DOC.split("Known exception", 1)[1].split("\n\n", 1)[0] if "Known exception" in DOC else ""
    )
    return {
        f"secfepas_sdk/{path} imports {target.split('.')[0]}"
        for path, target in re.findall(r"`([\w/]+\.py)`[^`]*imports `([\w.]+)`", text)
    }


def test_every_import_between_packages_is_allowed_by_the_map() -> None:
    allowed = _allowed()
    assert {"snni", "protocol", "camera", "edge", "alerts", "models", "cli"} <= set(allowed)
    broken = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        if rel.name == "__init__.py" and len(rel.parts) == 1:
            continue
        owner = rel.parts[0].removesuffix(".py")
        own = allowed.get(owner, GROUND if owner in GROUND else set())
        for target in _imports(path) - {owner} - own:
            broken.append(f"secfepas_sdk/{rel} imports {target}")
    for plugin in (ROOT / "integrations").glob("*/secfepas_*/*.py"):
        for target in _imports(plugin) - allowed["integrations/*"]:
            broken.append(f"{plugin.relative_to(ROOT)} imports {target}")
    broken = [b for b in broken if b not in _known_exceptions()]
    assert not broken, "docs/architecture.md does not allow: " + "; ".join(sorted(broken))


def test_every_module_is_on_the_map() -> None:
    missing = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.name != "__init__.py" and f"{path.name}`" not in DOC and f"{path.stem}`" not in DOC
    ]
    assert not missing, f"docs/architecture.md does not place: {missing}"
