"""Start-up imports only what a command needs: `scrub --help` and `scrub validate` of a file with a YAML
error load no torch; `scrub sites` of a bundled model loads torch but not TransformerLens (a slow import:
about two thirds of the old start-up of `scrub sites`; figures in docs/cli.md)."""

import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
HEAVY = ("torch", "transformer_lens", "transformers")
DRIVER = """
import sys
from scrub.app.cli.entry import main
sys.argv = ["scrub", *sys.argv[1:]]
try:
    main()
except SystemExit as exc:
    code = exc.code
print("LOADED", *[m for m in {heavy!r} if m in sys.modules], file=sys.stderr)
"""


def loaded_by(*args) -> tuple[set, str]:
    """The heavy modules a `scrub ...` command imports (run in a fresh interpreter), and its output."""
    done = subprocess.run([sys.executable, "-c", DRIVER.format(heavy=HEAVY), *map(str, args)], capture_output=True,
                          text=True, timeout=300, cwd=ROOT)
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("LOADED"), done.stderr
    return set(last.split()[1:]), done.stdout + done.stderr


def test_help_imports_no_torch():
    modules, out = loaded_by("--help")
    assert modules == set() and "validate" in out


def test_validating_a_yaml_error_imports_no_torch(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: induction\nhypothesis: [\n")
    modules, out = loaded_by("validate", bad)
    assert modules == set() and "YAML syntax error" in out


@pytest.mark.parametrize("model", ["induction", "paren"])
def test_sites_of_a_bundled_checkpoint_imports_no_transformer_lens(model):
    modules, out = loaded_by("sites", model)
    assert modules == {"torch"} and "head.0.0" in out


def test_sites_from_the_checkpoint_config_equal_the_loaded_models_sites():
    import scrub
    from click.testing import CliRunner

    from hypotheses.cases import induction, paren
    from scrub.app.cli.main import cli

    for name, case in (("induction", induction), ("paren", paren)):
        listed = CliRunner().invoke(cli, ["sites", name]).output
        assert listed.strip() == scrub.list_sites(case.load_model()).strip()
