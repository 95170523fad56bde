"""Import a Python object by its dotted path: the only way a spec names code.

No string from a spec is ever evaluated; `module.sub.name` is resolved with
importlib and getattr. Running a spec imports the modules it names, as
running a script would (see docs/spec-format.md).
"""

from __future__ import annotations

import importlib
from typing import Any

from scrub.errors import did_you_mean


def import_object(path: str) -> Any:
    if not isinstance(path, str) or not all(p.isidentifier() for p in path.split(".")) or "." not in path:
        raise ValueError(f"{path!r} is not an import path like 'package.module.function'.")
    parts = path.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            obj = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and not module_name.startswith(exc.name) and exc.name != module_name:
                raise ValueError(f"importing {module_name!r} failed: it needs module {exc.name!r}.") from None
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                names = [n for n in dir(obj) if not n.startswith("_")]
                raise ValueError(f"{'.'.join(parts[:parts.index(attr)])!r} has no attribute {attr!r}."
                                 + did_you_mean(attr, names))
            obj = getattr(obj, attr)
        return obj
    raise ValueError(f"no module found for {path!r}; is the package installed or on PYTHONPATH?")
