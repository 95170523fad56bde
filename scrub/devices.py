"""Device names checked before anything is moved: 'cuda' without a GPU is bad input, not a crash.

torch accepts `torch.device("cuda")` on a CPU-only build and fails later, deep
inside `.to()`, with "Torch not compiled with CUDA enabled"; a misspelt name
('gpu') gets a list of twenty backends. `resolve_device` says what is wrong
and what to use instead, before a model is loaded or moved.
"""

from __future__ import annotations

from typing import Optional, Union

import torch

from scrub.errors import DeviceError, did_you_mean

NAMES = "cpu, cuda, cuda:N (the N-th GPU), mps (Apple)"
MEANT = {"gpu": "cuda", "nvidia": "cuda", "cuda0": "cuda:0", "apple": "mps", "metal": "mps"}


def available() -> list[str]:
    """The device names this machine can use."""
    out = ["cpu"]
    if torch.cuda.is_available():
        out += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        out.append("mps")
    return out


def resolve_device(device: Union[None, str, torch.device]) -> Optional[torch.device]:
    """`device` as a torch.device that exists here (None stays None: leave the model where it is)."""
    if device is None or isinstance(device, torch.device) and device.type == "cpu":
        return device
    here = ", ".join(available())
    if not isinstance(device, (str, torch.device)):
        raise DeviceError(f"device must be a name such as 'cpu' or 'cuda'; got {type(device).__name__} {device!r}.")
    name = device.strip().lower() if isinstance(device, str) else device
    try:
        dev = torch.device(name)
    except RuntimeError:
        hint = f" Did you mean {MEANT[name]!r}?" if name in MEANT else did_you_mean(name, ("cpu", "cuda", "mps"))
        raise DeviceError(f"unknown device {str(device)!r}.{hint} Valid names: {NAMES}. This machine has: {here}.") \
            from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"no CUDA device here (device {str(device)!r}); use --device cpu (device='cpu' from Python). "
                              f"This machine has: {here}.")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"device {str(device)!r}: this machine has {torch.cuda.device_count()} CUDA device(s) "
                              f"({here}).")
    elif dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise DeviceError(f"no Apple MPS device here (device {str(device)!r}); use --device cpu (device='cpu' from Python). "
                          f"This machine has: {here}.")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise DeviceError(f"device {str(device)!r} is not supported by scrub; valid names: {NAMES}. "
                          f"This machine has: {here}.")
    return dev
