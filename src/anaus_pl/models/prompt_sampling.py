"""SAM prompts drawn from ground-truth masks (adapter phase): a positive click and a jittered box."""

from __future__ import annotations

import torch


def sample_prompts(
    masks: torch.Tensor, box_jitter: float = 0.1, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For each non-empty mask ``(N, H, W)``: a uniform random foreground click and its box, jittered.

    Returns ``points (N, 1, 2)`` xy pixels, ``labels (N, 1)`` (all positive) and
    ``boxes (N, 4)`` xyxy pixels; each box corner moves by up to ``box_jitter``
    of the box side, clamped to the image.
    """
    n, h, w = masks.shape
    flat = masks.reshape(n, -1).float()
    if (flat.sum(1) == 0).any():
        raise ValueError("sample_prompts needs non-empty masks (absent classes get no SAM prompt)")
    index = torch.multinomial(flat, 1, generator=generator).squeeze(1)
    points = torch.stack([index % w, index // w], dim=1).float().unsqueeze(1)
    rows, cols = masks.any(2), masks.any(1)
    ar_h, ar_w = torch.arange(h, device=masks.device), torch.arange(w, device=masks.device)
    y0 = torch.where(rows, ar_h, h).min(1).values
    y1 = torch.where(rows, ar_h, -1).max(1).values
    x0 = torch.where(cols, ar_w, w).min(1).values
    x1 = torch.where(cols, ar_w, -1).max(1).values
    boxes = torch.stack([x0, y0, x1, y1], dim=1).float()
    side = torch.stack([x1 - x0, y1 - y0, x1 - x0, y1 - y0], dim=1).float() + 1
    noise = torch.rand(boxes.shape, generator=generator, device=masks.device) * 2 - 1
    boxes = boxes + noise * box_jitter * side
    limit = torch.tensor([w - 1, h - 1, w - 1, h - 1], device=masks.device, dtype=boxes.dtype)
    boxes = torch.minimum(boxes.clamp_min(0), limit)
    return points, torch.ones(n, 1, dtype=torch.long, device=masks.device), boxes
