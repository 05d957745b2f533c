"""The house rules that keep the code readable, checked: no function in the package over 60
lines (STYLE.md), and `Pipeline.generate` under 40, so that a new feature plugs in as a part
instead of growing another parameter pair (the seams issue)."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import hwaksan
from hwaksan.pipeline import Pipeline

PACKAGE = Path(hwaksan.__file__).parent


def _function_lengths():
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield path.relative_to(PACKAGE), node.name, node.end_lineno - node.lineno + 1


def test_no_function_in_the_package_is_over_60_lines():
    long = [f"{path}:{name} ({n} lines)" for path, name, n in _function_lengths() if n > 60]
    assert not long, long


def test_generate_is_under_40_lines():
    lines = inspect.getsource(Pipeline.generate).splitlines()
    body = [line for line in lines if not line.strip().startswith("@")]
    assert len(body) < 40, len(body)


def test_import_hwaksan_leaves_the_optional_stacks_unimported():
    """diffusers, transformers and Gradio cost seconds to import (diffusers#3338): only the
    code that uses them imports them (benchmarks/import_time.py times the rest)."""
    import subprocess
    import sys

    heavy = ("diffusers", "transformers", "gradio", "accelerate", "matplotlib")
    code = f"import sys, hwaksan; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
