"""Layers point down only, and every package imports first, alone, in a fresh interpreter.

The layers (docs/architecture.md), lowest first:

    scrub.errors  <  hypotheses (the language)  <  scrub (graph, data, adapters, compiler, engine)
                  <  metrics  <  hypotheses.cases (case studies)  <  scrub.app (spec files, CLI, reports)

Every import statement of ours, at module level or inside a function, is read
from the source; one that names a module of a higher layer fails the test.
"""

import ast
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGES = ("scrub", "hypotheses", "metrics")


def layer(module: str) -> int | None:
    """The layer of one of our modules (None: not ours)."""
    top = module.split(".")[0]
    if top not in PACKAGES:
        return None
    if module == "scrub.errors":
        return 0
    if module == "hypotheses.cases" or module.startswith("hypotheses.cases."):
        return 4
    if module == "scrub.app" or module.startswith("scrub.app."):
        return 5
    return {"hypotheses": 1, "scrub": 2, "metrics": 3}[top]


def our_modules():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
            yield ".".join(parts), path


MODULES = {name for name, _ in our_modules()}


def imports_of(path: pathlib.Path, module: str):
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module
            yield node.lineno, name
            for alias in node.names:  # `from scrub import app` imports the module scrub.app
                if f"{name}.{alias.name}" in MODULES:
                    yield node.lineno, f"{name}.{alias.name}"


def test_layer_of_is_total():
    for module, _ in our_modules():
        assert layer(module) is not None, module


def test_imports_point_down_only():
    bad = []
    for module, path in our_modules():
        mine = layer(module)
        for line, name in imports_of(path, module):
            theirs = layer(name)
            if theirs is not None and theirs > mine:
                bad.append(f"{path.relative_to(ROOT)}:{line} ({module}, layer {mine}) imports {name} (layer {theirs})")
    assert not bad, "imports pointing up a layer:\n" + "\n".join(bad)


FIRST_IMPORTS = {
    "from hypotheses import Hypothesis, Node, agree": ("transformer_lens", "scrub.engine", "scrub.adapters", "metrics"),
    "import hypotheses": ("transformer_lens", "scrub.engine", "metrics", "scrub.app"),
    "import scrub": ("transformer_lens", "hypotheses", "metrics", "scrub.app", "torch"),
    "import scrub.errors": ("torch", "hypotheses"),
    "from scrub import Dataset, run": ("metrics", "scrub.app", "wandb"),
    "import metrics": ("scrub.app", "wandb"),
    "from metrics import evaluate, NextTokenLoss": ("scrub.app", "wandb"),
    "import scrub.app.cli.main": ("torch", "transformer_lens", "transformers"),
}


@pytest.mark.parametrize("statement", sorted(FIRST_IMPORTS))
def test_each_package_imports_first_alone(statement):
    """In a fresh interpreter: the import works as a script's first line, and drags in nothing above it."""
    forbidden = FIRST_IMPORTS[statement]
    code = (f"{statement}\nimport sys\n"
            f"bad = sorted(m for m in sys.modules for f in {forbidden!r} if m == f or m.startswith(f + '.'))\n"
            "print(bad)")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", f"{statement!r} imported {out.stdout.strip()}"
