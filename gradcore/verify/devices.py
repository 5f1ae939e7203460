"""Which devices a run measures on (shared by the CLI and the pytest plugin, free of pytest)."""
from __future__ import annotations

DEVICE_CHOICES = ("auto", "cpu", "cuda", "all")


def selected_devices(option: str) -> list[str]:
    """``auto``: the CPU plus CUDA when present; ``all``: both (CUDA cases skip without it)."""
    import torch

    if option == "auto":
        return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    return ["cpu", "cuda"] if option == "all" else [option]


def cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())
