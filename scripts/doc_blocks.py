"""Rewrite measured blocks in docs pages: `<!-- BEGIN name -->` ... `<!-- END name -->`.

Pages keep hand-written prose; scripts (case_studies.py, bench.py) replace only
the blocks between the markers, so every table in docs/ comes from a command.
"""

from __future__ import annotations

import pathlib
import re


def put_block(path: pathlib.Path, block: str, text: str) -> None:
    src = path.read_text()
    pattern = re.compile(rf"(<!-- BEGIN {re.escape(block)} -->\n).*?(<!-- END {re.escape(block)} -->)", re.S)
    if not pattern.search(src):
        raise SystemExit(f"{path}: no block {block!r} (add '<!-- BEGIN {block} -->' and '<!-- END {block} -->')")
    path.write_text(pattern.sub(lambda m: m.group(1) + text.rstrip() + "\n" + m.group(2), src))
    print(f"updated {path.name}: {block}")
