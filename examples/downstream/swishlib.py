"""Swish / SiLU, x·σ(x) (Ramachandran, Zoph & Le 2017), the technique this project ships."""
import torch


def swish(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(x)
