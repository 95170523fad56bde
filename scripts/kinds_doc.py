"""Write the registered kinds into docs/spec-format.md (the block between `<!-- BEGIN kinds -->` markers).

    python scripts/kinds_doc.py [--check]

The registries are the source; `--check` fails if the page is stale (tests/test_contributing.py runs it).
"""

from __future__ import annotations

import argparse
import pathlib
import re
import sys

from scrub.app.kinds import markdown

PAGE = pathlib.Path(__file__).resolve().parent.parent / "docs" / "spec-format.md"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    text = PAGE.read_text()
    block = re.search(r"<!-- BEGIN kinds -->\n(.*?)<!-- END kinds -->", text, re.S)
    if block is None:
        sys.exit(f"{PAGE}: no kinds block")
    want = markdown().rstrip() + "\n"
    if args.check:
        if block.group(1) != want:
            sys.exit(f"{PAGE.name} lists stale kinds; run python scripts/kinds_doc.py")
        return
    from doc_blocks import put_block

    put_block(PAGE, "kinds", want)


if __name__ == "__main__":
    main()
