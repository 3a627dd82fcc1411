"""House rules checked by the suite: layering, fresh generated code, types, lint, exports.

These run the same tools a developer runs by hand, so CI fails on a broken
rule rather than a reviewer having to spot it.
"""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import cairn

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)


def test_imports_point_down_only() -> None:
    result = run(str(BIN / "lint-imports"), "--no-cache")
    assert result.returncode == 0, result.stdout + result.stderr


def test_generated_protobuf_code_is_fresh() -> None:
    result = run(sys.executable, "scripts/gen_protos.py", "--check")
    assert result.returncode == 0, result.stdout + result.stderr


def test_types_are_strict_clean() -> None:
    result = run(sys.executable, "-m", "mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_lint_is_clean() -> None:
    result = run(str(BIN / "ruff"), "check", "src", "tests", "scripts", "bench")
    assert result.returncode == 0, result.stdout + result.stderr


def _packages() -> list[str]:
    names = ["cairn"]
    for info in pkgutil.walk_packages(cairn.__path__, "cairn."):
        if info.ispkg and ".gen" not in info.name:
            names.append(info.name)
    return names


@pytest.mark.parametrize("name", _packages())
def test_every_package_declares_its_public_names(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name}/__init__.py needs __all__"
    missing = [n for n in exported if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names what it does not define: {missing}"
