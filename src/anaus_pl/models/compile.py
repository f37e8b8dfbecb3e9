"""``torch.compile`` of a stage's networks, in place, and whether this platform can compile."""

from __future__ import annotations

import shutil
import sys

import torch
from torch import nn


def compile_unavailable_reason() -> str | None:
    """Why ``torch.compile`` cannot run here (``None`` when it can).

    Inductor generates C++ on CPU and Triton kernels on CUDA; without a C++ compiler it cannot
    build the CPU kernels, and torch builds without Dynamo support refuse to compile.
    """
    if not hasattr(torch, "compile") or not torch._dynamo.is_dynamo_supported():
        return f"torch {torch.__version__} on Python {sys.version.split()[0]} does not support torch.compile (Dynamo)"
    if shutil.which("c++") is None and shutil.which("g++") is None and shutil.which("clang++") is None:
        return "no C++ compiler (c++, g++ or clang++) on PATH: Inductor cannot build CPU kernels"
    return None


def compile_modules(*modules: nn.Module) -> None:
    """``torch.compile`` each module's forward in place (``nn.Module.compile``).

    The modules keep their class, parameters and state-dict keys, so checkpoints, the EMA
    update and the encoder export are unchanged; compilation happens at the first call.
    """
    reason = compile_unavailable_reason()
    if reason is not None:
        raise RuntimeError(f"model.compile is true but {reason}; set model.compile: false")
    for module in modules:
        module.compile()
