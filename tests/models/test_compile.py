"""The ``compile`` option of pretrain and finetune: same loss as eager, same checkpoint keys, clear refusal."""

from __future__ import annotations

import pytest
import torch
from test_fast_paths import SMALL, small_batch
from torch.nn import functional as F

from anaus_pl.evaluation.kinds import get_kind
from anaus_pl.models import compile as compile_module
from anaus_pl.models.compile import compile_modules, compile_unavailable_reason
from anaus_pl.tasks.finetune import FinetuneModule
from anaus_pl.tasks.pretrain import PretrainTask

UNAVAILABLE = compile_unavailable_reason()
needs_compile = pytest.mark.skipif(UNAVAILABLE is not None, reason=f"torch.compile cannot run here: {UNAVAILABLE}")
TINY = {**SMALL, "scales": ["c5", "p3"]}


@pytest.fixture
def graph_only_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    """Compile through Dynamo and AOT autograd without Inductor's C++ code generation (minutes on 2 CPU cores):
    the loss equality then checks the graphs our modules give Dynamo; Inductor itself runs in benchmarks/gpu_check.sh."""
    original = torch.nn.Module.compile
    monkeypatch.setattr(
        torch.nn.Module,
        "compile",
        lambda self, *args, **kwargs: original(self, *args, **{**kwargs, "backend": "aot_eager"}),
    )


def test_compile_refuses_clearly_without_a_cpp_compiler(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compile_module.shutil, "which", lambda name: None)
    assert "C++ compiler" in compile_unavailable_reason()
    with pytest.raises(RuntimeError, match="model.compile: false"):
        compile_modules(torch.nn.Linear(2, 2))


@needs_compile
def test_compiled_task_keeps_its_checkpoint_keys() -> None:
    eager, compiled = PretrainTask(**TINY), PretrainTask(**TINY, compile=True)
    assert compiled.state_dict().keys() == eager.state_dict().keys()
    assert type(compiled.online) is type(eager.online)


def _pretrain_loss(compiled: bool) -> torch.Tensor:
    torch.manual_seed(0)
    task = PretrainTask(**TINY, compile=compiled)
    torch.manual_seed(1)
    return task.compute_losses(small_batch())["loss"].detach()


@needs_compile
def test_compiled_pretrain_gives_the_eager_loss(graph_only_backend: None) -> None:
    assert torch.allclose(_pretrain_loss(True), _pretrain_loss(False), rtol=1e-4)


def _finetune_loss(compiled: bool) -> torch.Tensor:
    torch.manual_seed(0)
    module = FinetuneModule(get_kind("classification"), init="random", head="linear", num_classes=3, compile=compiled)
    images = torch.rand(4, 1, 64, 64, generator=torch.Generator().manual_seed(2))
    return F.cross_entropy(module.model(images), torch.tensor([0, 1, 2, 1])).detach()


@needs_compile
def test_compiled_finetune_gives_the_eager_loss(graph_only_backend: None) -> None:
    assert torch.allclose(_finetune_loss(True), _finetune_loss(False), rtol=1e-4)
