"""The docs' Python blocks run as written."""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def python_blocks(path: pathlib.Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


@pytest.mark.parametrize("page,expected", [("quickstart.md", "loss recovered"), ("spec-format.md", "induction heads"),
                                           ("performance.md", "loss recovered")])
def test_doc_examples_run(page, expected, capsys):
    namespace: dict = {}
    for block in python_blocks(DOCS / page):
        exec(compile(block, f"{page}", "exec"), namespace)  # noqa: S102 - our own docs
    assert expected in capsys.readouterr().out


def test_readme_example_runs(capsys):
    namespace: dict = {}
    for block in python_blocks(ROOT / "README.md"):
        exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 - our own docs
    assert "loss_recovered" in capsys.readouterr().out
