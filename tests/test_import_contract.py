"""The import contract of the layers (DESIGN.md), checked over the AST of every module.

Rules, each with the reason it exists:

1. ``secfepas_sdk.snni`` (the engine, every module below it) does no I/O and reads
   no ambient configuration. It talks through a ``Channel`` and takes its settings
   as arguments. So no module in it may:
   - import ``socket``, ``ssl``, ``asyncio``, ``selectors``, ``subprocess``,
     ``multiprocessing``, ``signal``, ``argparse``, ``tempfile``, ``shutil``,
     ``glob`` or ``pathlib`` (transports, processes, command lines, file systems);
   - read the environment or the command line: ``os.environ``, ``os.environb``,
     ``os.getenv``, ``os.putenv``, ``os.unsetenv``, ``sys.argv`` (as an attribute
     or through ``from os import environ``);
   - call the builtin ``open`` (or ``io.open``);
   - import an upper layer: ``secfepas_sdk.protocol``, ``camera``, ``edge``,
     ``models``, ``alerts``, ``cli``, ``certs`` or any alert-sink plugin.
2. ``secfepas_sdk.protocol`` (sans-IO wire protocol) may import the engine but no
   layer above it (``camera``, ``edge``, ``models``, ``alerts``, ``cli``, ``certs``,
   plugins). Its I/O lives in its transport layer: ``protocol/transport.py``, and
   ``protocol/tls_failures.py``, which only reads the TLS error types (``ssl``,
   ``asyncio``) that the transport and its callers catch. Only those two may import
   ``socket``, ``ssl``, ``asyncio`` or ``selectors``; the sans-IO rest (framing,
   events, the connection and its table) may not. No protocol module spawns
   processes, reads files through ``tempfile``, parses a command line or reads the
   environment.

Imports are found wherever they are written (module level, inside functions,
under ``TYPE_CHECKING``), absolute or relative. The checker is itself tested on
small snippets, so a rule that stops matching fails here too.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parent.parent / "secfepas_sdk"

UPPER_LAYERS = ("camera", "edge", "models", "alerts", "cli", "certs")
PLUGINS = ("secfepas_mqtt", "secfepas_fhir", "secfepas_sink_example")
IO_MODULES = ("socket", "ssl", "asyncio", "selectors")
PROCESS_AND_FILE_MODULES = (
    "subprocess",
    "multiprocessing",
    "signal",
    "argparse",
    "tempfile",
    "shutil",
    "glob",
    "pathlib",
)
ENV_ATTRIBUTES = {
    ("os", "environ"),
    ("os", "environb"),
    ("os", "getenv"),
    ("os", "putenv"),
    ("os", "unsetenv"),
    ("sys", "argv"),
}


@dataclass(frozen=True, slots=True)
class Rules:
    forbidden_modules: tuple[str, ...]  # top-level or dotted prefixes
    forbid_env: bool
    forbid_open: bool


SNNI_RULES = Rules(
    forbidden_modules=(
        *IO_MODULES,
        *PROCESS_AND_FILE_MODULES,
        "secfepas_sdk.protocol",
        *(f"secfepas_sdk.{layer}" for layer in UPPER_LAYERS),
        *PLUGINS,
    ),
    forbid_env=True,
    forbid_open=True,
)
PROTOCOL_RULES = Rules(
    forbidden_modules=(
        *IO_MODULES,
        "subprocess",
        "multiprocessing",
        "argparse",
        "tempfile",
        *(f"secfepas_sdk.{layer}" for layer in UPPER_LAYERS),
        *PLUGINS,
    ),
    forbid_env=True,
    forbid_open=True,
)
# The protocol's transport layer: the same rules, except that it owns the sockets.
TRANSPORT_MODULES = ("secfepas_sdk.protocol.transport", "secfepas_sdk.protocol.tls_failures")
TRANSPORT_RULES = Rules(
    forbidden_modules=tuple(m for m in PROTOCOL_RULES.forbidden_modules if m not in IO_MODULES),
    forbid_env=True,
    forbid_open=True,
)


def _matches(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _resolve(node: ast.ImportFrom, module_name: str, is_package: bool) -> str:
    """The absolute module an ImportFrom names (relative imports resolved)."""
    if node.level == 0:
        return node.module or ""
    parts = module_name.split(".")
    base = parts if is_package else parts[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def violations(
    source: str, module_name: str, rules: Rules, *, is_package: bool = False
) -> list[str]:
    """Every breach of ``rules`` in one module's source, as readable lines."""
    tree = ast.parse(source)
    found: list[str] = []

    def check_module(name: str, line: int) -> None:
        for prefix in rules.forbidden_modules:
            if _matches(name, prefix):
                found.append(f"{module_name}:{line} imports {name}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                check_module(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node, module_name, is_package)
            check_module(base, node.lineno)
            for alias in node.names:
                check_module(f"{base}.{alias.name}", node.lineno)
                if rules.forbid_env and (base, alias.name) in ENV_ATTRIBUTES:
                    found.append(f"{module_name}:{node.lineno} imports {base}.{alias.name}")
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if rules.forbid_env and (node.value.id, node.attr) in ENV_ATTRIBUTES:
                found.append(f"{module_name}:{node.lineno} uses {node.value.id}.{node.attr}")
        elif isinstance(node, ast.Call) and rules.forbid_open:
            func = node.func
            if (isinstance(func, ast.Name) and func.id == "open") or (
                isinstance(func, ast.Attribute)
                and func.attr == "open"
                and isinstance(func.value, ast.Name)
                and func.value.id == "io"
            ):
                found.append(f"{module_name}:{node.lineno} opens a file")
    return found


def _modules(package: str) -> list[tuple[str, Path]]:
    root = PACKAGE_ROOT / package
    out = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(PACKAGE_ROOT.parent).with_suffix("")
        out.append((".".join(rel.parts), path))
    return out


def _check(package: str, rules_for: dict[str, Rules], default: Rules) -> list[str]:
    problems: list[str] = []
    for name, path in _modules(package):
        rules = rules_for.get(name, default)
        problems += violations(
            path.read_text(encoding="utf-8"), name, rules, is_package=path.name == "__init__.py"
        )
    return problems


def test_snni_does_no_io_and_imports_no_upper_layer() -> None:
    assert _modules("snni"), "no snni modules found: wrong package root"
    assert _check("snni", {}, SNNI_RULES) == []


def test_protocol_keeps_its_io_in_transport_and_imports_no_upper_layer() -> None:
    names = [name for name, _ in _modules("protocol")]
    assert "secfepas_sdk.protocol.transport" in names
    problems = _check("protocol", dict.fromkeys(TRANSPORT_MODULES, TRANSPORT_RULES), PROTOCOL_RULES)
    assert problems == []


@pytest.mark.parametrize(
    ("source", "rules", "expected"),
    [
        ("import socket", SNNI_RULES, "imports socket"),
        ("def f():\n    import subprocess", SNNI_RULES, "imports subprocess"),
        ("from multiprocessing import util", SNNI_RULES, "imports multiprocessing"),
        ("import os\nx = os.environ.get('A')", SNNI_RULES, "uses os.environ"),
        ("import os\nx = os.getenv('A')", SNNI_RULES, "uses os.getenv"),
        ("from os import environ", SNNI_RULES, "imports os.environ"),
        ("with open('x') as f:\n    pass", SNNI_RULES, "opens a file"),
        ("from secfepas_sdk.models import package", SNNI_RULES, "secfepas_sdk.models"),
        ("from secfepas_sdk import edge", SNNI_RULES, "secfepas_sdk.edge"),
        ("from ...protocol import transport", SNNI_RULES, "secfepas_sdk.protocol"),
        ("from secfepas_sdk.protocol.transport import SocketChannel", SNNI_RULES, "protocol"),
        ("import asyncio", PROTOCOL_RULES, "imports asyncio"),
        ("from secfepas_sdk.camera import client", PROTOCOL_RULES, "secfepas_sdk.camera"),
        ("from secfepas_sdk.edge.settings import EdgeSettings", TRANSPORT_RULES, "edge"),
    ],
)
def test_the_checker_catches_each_kind_of_breach(source: str, rules: Rules, expected: str) -> None:
    found = violations(source, "secfepas_sdk.snni.he.example", rules)
    assert any(expected in line for line in found), found


@pytest.mark.parametrize(
    ("source", "rules"),
    [
        ("import os\nfd = os.memfd_create('x')", SNNI_RULES),
        ("from secfepas_sdk.snni.channel import Channel", PROTOCOL_RULES),
        ("import socket, ssl, asyncio", TRANSPORT_RULES),
        ("from . import ring", SNNI_RULES),
    ],
)
def test_the_checker_allows_what_the_layers_may_use(source: str, rules: Rules) -> None:
    assert violations(source, "secfepas_sdk.snni.example", rules) == []
