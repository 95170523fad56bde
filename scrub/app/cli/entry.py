"""The `scrub` console entry point: imports nothing until it can catch Ctrl-C.

A Ctrl-C while the command's own imports run (click, torch, TransformerLens)
exits 130 with one line, as it does later, instead of a page of traceback.
"""

import sys

EXIT_INTERRUPTED = 130


def main() -> None:
    try:
        from scrub.app.cli.main import cli

        cli.main(prog_name="scrub")
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted. Finished results are on disk; run the same command again to resume.\n")
        sys.exit(EXIT_INTERRUPTED)
