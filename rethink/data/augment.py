"""Batched CIFAR augmentation on the training device: zero-pad 4, random 32x32 crop, horizontal flip, normalise."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_crop_flip(images: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Pad ``images`` (N,C,H,W, any dtype) with zeros, crop back to H,W at a random offset per image, flip half.

    Matches torchvision's RandomCrop(H, padding) + RandomHorizontalFlip, but for the whole batch in a few kernels.
    """
    n, device = images.shape[0], images.device
    dy = torch.randint(0, 2 * padding + 1, (n,), device=device, generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n,), device=device, generator=generator)
    flip = torch.rand(n, device=device, generator=generator) < 0.5
    return crop_flip(images, padding, dy, dx, flip)


def crop_flip(
    images: torch.Tensor, padding: int, dy: torch.Tensor, dx: torch.Tensor, flip: torch.Tensor
) -> torch.Tensor:
    """Zero-pad, crop image i at offset (dy[i], dx[i]) of the padded image, then mirror it where ``flip[i]``."""
    n, _, h, w = images.shape
    device = images.device
    padded = F.pad(images, (padding, padding, padding, padding))
    cols = torch.arange(w, device=device)
    cols = torch.where(flip[:, None], w - 1 - cols, cols) + dx[:, None]  # a flipped crop reads its columns reversed
    rows = torch.arange(h, device=device)[None, :] + dy[:, None]
    batch = torch.arange(n, device=device)[:, None, None]
    # (N, H, W, C) gather, then back to channels-first
    return padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def normalize(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 (N,C,H,W) -> float, scaled to [0,1] as ToTensor does, then per-channel (x - mean) / std."""
    x = images.float().div_(255.0)
    return x.sub_(mean.view(1, -1, 1, 1)).div_(std.view(1, -1, 1, 1)).contiguous()
