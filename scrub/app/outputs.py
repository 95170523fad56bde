"""Output folders and files: unique, stable, never outside `--out`, written atomically with the user's umask.

A spec's results live in `OUT/<slug of its name>/`. Slugs lose characters
(emoji, punctuation) and two spec files can carry the same name, so a folder
records who owns it (`.scrub-owner`: the spec file's resolved path). A spec
reuses the folder it owns; a folder owned by another spec is never written:
the spec takes the next free `<slug>-2`, `<slug>-3`, ... and finds that one
again on the next run, so resuming still works and nothing computed is lost.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import tempfile
from typing import Optional

from scrub.errors import ScrubError

OWNER_FILE = ".scrub-owner"


class OutputError(ScrubError, ValueError):
    """The output folder cannot be used (not writable, or a name that would leave it)."""


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")[:100] or "spec"


def safe_child(root: pathlib.Path, name: str) -> pathlib.Path:
    """root/slug(name), refusing anything that would resolve outside root."""
    root = root.resolve()
    child = (root / slug(name)).resolve()
    if root not in child.parents:
        raise OutputError(f"output name {name!r} would leave the output folder {root}.")
    return child


def claim_folder(root: pathlib.Path, name: str, owner: str) -> pathlib.Path:
    """The folder under `root` for the results of `owner` (e.g. a spec file's path), named after `name`:
    the one it already owns, else the first free `<slug>`, `<slug>-2`, ... (created and marked as its own)."""
    base = safe_child(root, name)
    taken = {p.name for p in base.parent.glob(f"{glob_escape(base.name)}*")}
    free: Optional[pathlib.Path] = None
    for i in range(1, len(taken) + 2):
        folder = base if i == 1 else base.with_name(f"{base.name}-{i}")
        if folder.name not in taken:
            free = free or folder
            continue
        if folder_owner(folder) == owner:
            return folder
    assert free is not None  # len(taken) + 1 candidates, at most len(taken) of them taken
    free.mkdir(parents=True, exist_ok=True)
    write_atomic(free / OWNER_FILE, (owner + "\n").encode())
    return free


def folder_owner(folder: pathlib.Path) -> Optional[str]:
    """Who owns a results folder: its marker, else (folders written before markers) the spec file its result
    names; None when nothing says (a foreign folder is then left alone)."""
    marker = folder / OWNER_FILE
    if marker.is_file():
        return marker.read_text(encoding="utf-8", errors="replace").strip()
    for result in sorted(folder.glob("**/result.json")):
        try:
            spec_file = json.loads(result.read_text()).get("spec_file")
        except (OSError, ValueError, AttributeError):
            continue
        if spec_file:
            return str(pathlib.Path(spec_file).resolve())
    return None


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]])", r"[\1]", text)


def file_mode() -> int:
    """Mode for new files: 0o666 less the process umask (what `open()` would give)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_atomic(path: pathlib.Path, data: bytes) -> None:
    """Write via a temporary file and rename: a reader never sees half a file. The file gets the umask's
    permissions (mkstemp alone would make it private)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def check_writable(root: pathlib.Path) -> None:
    """`root` exists (or can be created) and takes files: checked before any computation starts."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=root, prefix=".scrub-write-check-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise OutputError(f"cannot write to the output folder {str(root)!r} ({why.lower()}); choose another "
                          "folder with --out.") from None
