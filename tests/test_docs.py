"""Every code block in the docs runs as written: Python blocks are executed, YAML spec examples are
validated and run, and the `scrub` command lines in shell blocks name specs that validate."""

import glob
import pathlib
import re
import shlex
import sys

import pytest
import yaml
from click.testing import CliRunner

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("**/*.md")) + [ROOT / "README.md"]


def python_blocks(path: pathlib.Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


OTHER_FILES = {
    "docs/sweeps.md",  # its YAML blocks are sweep files, run by tests/test_sweep.py
    "docs/your-model.md",  # its specs need the model folders the page builds: tests/test_your_model_doc.py
}
RUN_BY_THEIR_OWN_TEST = {"docs/your-model.md"}  # commands on model folders the page itself builds


def yaml_blocks() -> list[tuple[str, int, str]]:
    """(page, index, text) of every ```yaml block of a spec (or a part of one) in the docs."""
    out = []
    for page in PAGES:
        name = str(page.relative_to(ROOT))
        if name in OTHER_FILES:
            continue
        for i, block in enumerate(re.findall(r"```yaml\n(.*?)```", page.read_text(), flags=re.S)):
            out.append((name, i, block))
    return out


SUBCOMMANDS = ("run", "compare", "cancel", "validate", "sites", "kinds")


def code_lines(text: str):
    """(language, line) for every line of a fenced block ('' when unlabelled) or an indented block."""
    fence = None
    for line in text.splitlines():
        if line.startswith("```"):
            fence = None if fence is not None else line[3:].strip()
        elif fence is not None:
            yield fence, line
        elif line.startswith("    "):
            yield "indented", line


def command_lines() -> list[tuple[str, str]]:
    """(page, line) of every `scrub <subcommand> ...` line in a shell or indented block."""
    out = []
    for page in PAGES:
        if str(page.relative_to(ROOT)) in RUN_BY_THEIR_OWN_TEST:
            continue
        for lang, line in code_lines(page.read_text()):
            words = line.split("#")[0].split()
            if lang in ("bash", "sh", "console", "", "indented") and words[:1] == ["scrub"] and \
                    len(words) > 1 and words[1] in SUBCOMMANDS:
                out.append((str(page.relative_to(ROOT)), " ".join(words)))
    return sorted(set(out))


def invoke(*args):
    from scrub.app.cli.main import cli

    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.mark.parametrize("page,expected", [("quickstart.md", "loss recovered"), ("spec-format.md", "induction heads"),
                                           ("case-studies/paren.md", "2.0 at 1: head 0.0"),
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


def test_the_docs_have_yaml_examples_and_commands():
    assert any(page == "docs/spec-format.md" for page, _, _ in yaml_blocks())
    assert len(command_lines()) >= 8


@pytest.mark.parametrize("page,index,text", yaml_blocks(), ids=lambda v: str(v).replace("/", "_")[:40])
def test_yaml_examples_validate_and_run(page, index, text, tmp_path):
    """A whole spec is validated and run (small); a fragment is validated inside a bundled spec. A module a
    fragment imports is the reader's own: an empty one stands in for it, beside the spec."""
    from scrub.app.spec.run_spec import TOP_KEYS

    doc = yaml.safe_load(text)
    assert isinstance(doc, dict), f"{page} block {index} is not a mapping"
    if "hypothesis" not in doc:
        assert set(doc) <= set(TOP_KEYS), f"{page} block {index}: {sorted(set(doc) - set(TOP_KEYS))}"
        base = yaml.safe_load((ROOT / "hypotheses/cases/induction/specs/induction-heads-only.yaml").read_text())
        doc = {**base, **doc}
    for module in doc.get("imports", []):
        (tmp_path / f"{module}.py").write_text('"""Stands in for the reader\'s own module."""\n')
    spec = tmp_path / "example.yaml"
    spec.write_text(yaml.safe_dump(doc, sort_keys=False))
    try:
        checked = invoke("validate", spec)
        assert checked.exit_code == 0, checked.output
        ran = invoke("run", spec, "--reference", 40, "--seeds", 1, "--out", tmp_path / "out")
        assert ran.exit_code == 0, ran.output
    finally:
        for module in doc.get("imports", []):
            sys.modules.pop(module, None)


def test_command_lines_name_specs_that_validate(monkeypatch):
    """`scrub sites` lines run; every spec file any other command line names exists and validates (once
    each; running them is the bundled-spec tests' job)."""
    monkeypatch.chdir(ROOT)
    named: set = set()
    for page, line in command_lines():
        args = shlex.split(line)[1:]
        if args[0] == "sites":
            assert invoke(*args).exit_code == 0, line
            continue
        specs = [p for a in args[1:] if a.endswith((".yaml", ".yml")) for p in sorted(glob.glob(a))]
        assert specs, f"{page}: {line!r} names no existing spec file"
        named.update(specs)
    result = invoke("validate", *sorted(named))
    assert result.exit_code == 0, result.output
