"""Loading tensor files (checkpoints, data files, saved seeds) safely, with errors that name the file.

Every `.pt` file scrub reads goes through `load_tensors`: `torch.load` with
`weights_only=True`, so a file can hold tensors, numbers, strings, lists and
dicts but never code. torch's own refusal is a page of text that ends by
suggesting `weights_only=False`, the one thing never to do with a file from
elsewhere; here it becomes one sentence naming the file and the fix.
"""

from __future__ import annotations

import pathlib
import pickle
import warnings
import zipfile
from typing import Any

from scrub.errors import DataError


def load_tensors(path, what: str = "tensor file") -> Any:
    """The contents of a `.pt` file written by `torch.save`, loaded without running any code in it.

    Raises DataError naming the file for a missing, unreadable, truncated or pickled file."""
    import torch

    path = pathlib.Path(path)
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols before it refuses; the error says it
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise DataError(f"{what} {str(path)!r} does not exist.") from None
    except IsADirectoryError:
        raise DataError(f"{what} {str(path)!r} is a folder, not a file.") from None
    except PermissionError:
        raise DataError(f"{what} {str(path)!r} cannot be read: permission denied.") from None
    except pickle.UnpicklingError:
        raise DataError(f"{what} {str(path)!r} holds pickled Python objects, which scrub never loads (loading them "
                        "could run code); it was not written by torch.save from plain values. Save plain tensors, numbers, strings, lists and dicts with torch.save "
                        "(e.g. {'inputs': tensor, 'labels': tensor}).") from None
    except (RuntimeError, EOFError, KeyError, IndexError, zipfile.BadZipFile, ValueError, OSError) as exc:
        raise DataError(f"{what} {str(path)!r} is not a readable torch file ({type(exc).__name__}); it may be "
                        "truncated, or not written by torch.save.") from None
