"""The one place a device name ("auto", "cpu", "cuda") becomes a ``torch.device``."""

from __future__ import annotations

import torch


def resolve_device(name: str) -> torch.device:
    """ "auto": CUDA when present, else the CPU; asking for CUDA where there is none is an error
    here, with a message, rather than a CUDA error later from deep inside torch."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: cuda was asked for but is not available")
    return device
