"""docs/your-model.md runs as written: its commands and Python blocks, in order, in a copy of its folder, print
what the page shows; its spec files are the ones the page quotes."""

import contextlib
import io
import pathlib
import re
import runpy
import shlex
import shutil
import sys

from click.testing import CliRunner

from scrub.app.cli.main import cli

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "your-model.md"
NUMBER = re.compile(r"-?\d[\d,]*\.?\d*(?:e-?\d+)?")


def blocks(text: str) -> list[tuple[str, str, str]]:
    """(language, body, the paragraph before it) for every fenced block, in order."""
    out = []
    for m in re.finditer(r"```(\w+)\n(.*?)```", text, flags=re.S):
        before = text[:m.start()].rstrip().rsplit("\n\n", 1)[-1]
        out.append((m.group(1), m.group(2), before))
    return out


def same_output(got: str, shown: str, where: str) -> None:
    """Equal up to run times and the working folder, and numbers within 1% (the last printed digit)."""
    def norm(text):
        return re.sub(r"\(\d+s\)", "(Ns)", text).rstrip().splitlines()

    got_lines, shown_lines = norm(got), norm(shown)
    assert len(got_lines) == len(shown_lines), f"{where}: printed\n{got}\nbut the page shows\n{shown}"
    for g, s in zip(got_lines, shown_lines):
        assert NUMBER.sub("#", g).rstrip() == NUMBER.sub("#", s).rstrip(), f"{where}:\n{g}\n!=\n{s}"
        for a, b in zip(NUMBER.findall(g), NUMBER.findall(s)):
            x, y = float(a.replace(",", "")), float(b.replace(",", ""))
            assert abs(x - y) <= 0.01 * max(abs(x), abs(y)) + 0.002, f"{where}:\n{g}\n!=\n{s}"


def run_command(line: str) -> str:
    words = shlex.split(line)
    if words[0] == "python":
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            runpy.run_path(words[1], run_name="__main__")
        return out.getvalue()
    assert words[0] == "scrub", line
    result = CliRunner().invoke(cli, words[1:])
    assert result.exit_code == 0, result.output
    return result.output


def test_the_page_runs_as_written(tmp_path, monkeypatch):
    shutil.copytree(ROOT / "docs" / "your-model", tmp_path / "docs" / "your-model",
                    ignore=shutil.ignore_patterns("models", "__pycache__"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    for module in ("my_models", "lm_data"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    namespace: dict = {}
    found = blocks(PAGE.read_text())
    assert {lang for lang, _, _ in found} == {"bash", "text", "python", "yaml"}
    for i, (lang, body, before) in enumerate(found):
        shown = found[i + 1][1] if i + 1 < len(found) and found[i + 1][0] == "text" else None
        if lang == "bash":
            printed = "".join(run_command(line) for line in body.strip().splitlines())
        elif lang == "python":
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                exec(compile(body, f"your-model.md block {i}", "exec"), namespace)  # noqa: S102 - our own docs
            printed = out.getvalue()
        elif lang == "yaml":
            file = re.findall(r"`(docs/your-model/[\w.-]+\.yaml)`", before)[-1]
            assert (ROOT / file).read_text() == body, f"{file} differs from the page"
            continue
        else:
            continue
        if shown is not None:
            same_output(printed.replace(f"{tmp_path}/", ""), shown, f"block {i} ({lang})")
    assert (tmp_path / "scrub-out" / "llama-keys-of-head-1.0" / "result.json").exists()
