"""Models from local Hugging Face folders and caches, never from the network.

    bridge = scrub.load_hf("path/to/save_pretrained-folder")   # or a name already in the local HF cache

`offline()` switches the Hugging Face libraries to offline mode. They read the
switch once, when `huggingface_hub` is first imported, so it sets the
environment variables and, if the library is already imported, its module
constant too: a model that is not on disk is then an immediate, clear error,
not a minute of retried requests.
"""

from __future__ import annotations

import os
import pathlib
import sys
import warnings
from typing import Optional, Union

from scrub.errors import AdapterError

DTYPES = ("float32", "float64", "bfloat16", "float16")


def offline() -> None:
    """Make every Hugging Face library in this process use local files only."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:  # imported before: it has already read the environment
        constants.HF_HUB_OFFLINE = True


def load_hf(name_or_folder: Union[str, os.PathLike], *, device: Optional[str] = None,
            dtype: Optional[str] = None):
    """A TransformerLens `TransformerBridge` of a causal language model saved with `save_pretrained` in a
    folder, or cached locally under its hub name (e.g. "gpt2"). Nothing is downloaded.

    device: where to put it (default: TransformerLens' choice); dtype: one of DTYPES (default float32)."""
    import torch

    offline()
    path = pathlib.Path(name_or_folder).expanduser()
    text = str(name_or_folder)
    if path.exists():
        if not (path / "config.json").is_file():
            raise AdapterError(f"{text!r} is not a Hugging Face model folder: it has no config.json "
                               "(write one with model.save_pretrained(folder)).")
        source = str(path.resolve())
    elif text.startswith((".", "/", "~")) or text.count("/") > 1:  # a path, not a hub name like "org/model"
        raise AdapterError(f"no folder {text!r}.")
    else:
        source = text
    if dtype is not None and dtype not in DTYPES:
        raise AdapterError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}.")
    from transformer_lens.model_bridge import TransformerBridge

    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # no "Loading weights" bar for a local folder
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return TransformerBridge.boot_transformers(source, device=device,
                                                       dtype=getattr(torch, dtype or "float32")).eval()
    except OSError as exc:
        if source is text:
            raise AdapterError(f"{text!r} is neither a folder nor a model in the local Hugging Face cache "
                               f"({_cache()}); scrub never downloads. Download it once where there is network "
                               f"access (huggingface-cli download {text}) or pass a save_pretrained folder.") from None
        raise AdapterError(f"cannot load {text!r}: {exc}") from None
    except ValueError as exc:
        if "tokenizer" in str(exc).lower():
            raise AdapterError(f"cannot load {text!r}: TransformerBridge needs a tokenizer beside the weights "
                               f"({str(exc).splitlines()[0]}); save one into the folder with "
                               "tokenizer.save_pretrained(folder).") from None
        raise AdapterError(f"cannot load {text!r}: {exc}") from None
    finally:
        if bars:
            hf_logging.enable_progress_bar()


def _cache() -> str:
    from huggingface_hub import constants

    return f"HF cache: {constants.HF_HUB_CACHE}"
