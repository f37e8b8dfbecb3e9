"""fp32 for the small matrix products where bf16 ones are emulated (x86 CPUs without AVX-512 BF16 or AMX).

On such a CPU, bf16 autocast sends matrix products that oneDNN cannot take to PyTorch's reference
kernels: on an AVX2 CPU with 2 threads a ``(256, 4096) @ (4096, 256)`` bf16 product took 692 ms
against 3.6 ms in fp32 (``benchmarks/README.md``). The pretrain step's products outside the backbone
(FPN region pooling and the heads) are small, so there they run in fp32 under CPU bf16 autocast; the
backbone's convolutions keep autocast's bf16. CUDA autocast and CPUs with bf16 units are untouched.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import torch

Method = TypeVar("Method", bound=Callable[..., Any])


def _native_bf16_matmuls() -> bool:
    """oneDNN's check for bf16 matrix units on this CPU (False where oneDNN is missing)."""
    return torch.backends.mkldnn.is_available() and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


BF16_MATMULS_EMULATED = not _native_bf16_matmuls()


def fp32_where_bf16_is_emulated(method: Method) -> Method:
    """Run ``method`` with CPU autocast off and its floating tensor arguments in fp32 under CPU bf16 autocast
    on a CPU that emulates bf16 matrix products; as it is everywhere else."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        emulated_bf16 = (
            BF16_MATMULS_EMULATED
            and torch.is_autocast_enabled("cpu")
            and torch.get_autocast_dtype("cpu") == torch.bfloat16
        )
        if not emulated_bf16:
            return method(*args, **kwargs)
        with torch.autocast("cpu", enabled=False):
            return method(*_in_fp32(args), **_in_fp32(kwargs))

    return wrapper  # type: ignore[return-value]


def _in_fp32(value: Any) -> Any:
    """``value`` with every floating tensor in it (also inside lists, tuples and dicts) cast to fp32."""
    if isinstance(value, torch.Tensor):
        return value.float() if value.is_floating_point() else value
    if type(value) in (list, tuple):
        return type(value)(_in_fp32(item) for item in value)
    if isinstance(value, dict):
        return {key: _in_fp32(item) for key, item in value.items()}
    return value
