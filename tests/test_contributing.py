"""docs/contributing.md's worked examples run as written: a new sampler and a new loss, each one class
and one registration line in one file, usable from Python and from a spec file's `imports:`."""

import os
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_contributing_examples_run(tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "contributing.md").read_text(), flags=re.S)
    assert len(blocks) == 3
    module, script = "".join(blocks[:2]), blocks[2]
    # one file, and the kinds are registered by one line each (the decorators)
    assert module.count("@SAMPLERS.register(") == 1 and module.count("@LOSSES.register(") == 1
    (tmp_path / "my_kinds.py").write_text(module)
    (tmp_path / "use.py").write_text(script)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "use.py"], cwd=tmp_path, capture_output=True, text=True, env=env,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    recovered = float(re.search(r"loss recovered (-?[\d.]+)", lines[0]).group(1))
    assert recovered < 0.5, lines[0]  # the disagreeing control must lose the behaviour
    assert "HuberLoss(position=0, delta=0.5" in lines[1] and "disagree(label)" in lines[1], lines[1]


def test_registered_kinds_are_listed_by_the_cli_and_in_the_spec_format_doc():
    from click.testing import CliRunner

    from scrub.app.cli.main import cli
    from scrub.app.kinds import registries

    listing = CliRunner().invoke(cli, ["kinds"]).output
    for _, registry in registries():
        for name in registry:
            assert f"  {name} " in listing, (registry.sort, name)
    check = subprocess.run([sys.executable, "scripts/kinds_doc.py", "--check"], cwd=ROOT, capture_output=True,
                           text=True)
    assert check.returncode == 0, check.stderr
