"""scripts/compare_checkpoints.py: counts equal tensors and the largest difference, exit code says if all match."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "compare_checkpoints.py"


def load_script():
    spec = importlib.util.spec_from_file_location("compare_checkpoints", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_compare_counts_equal_tensors_and_the_largest_difference():
    compare = load_script().compare
    first = {"a": torch.tensor([1.0, 2.0]), "b": torch.tensor([0.5]), "only_here": torch.zeros(1)}
    second = {"a": torch.tensor([1.0, 2.0]), "b": torch.tensor([0.25])}
    assert compare(first, second) == (1, 2, 0.25)
    assert compare(first, first) == (2 + 1, 3, 0.0)


def test_main_exit_code_says_whether_two_checkpoints_match(tmp_path, capsys):
    script = load_script()
    state = {"hyper_parameters": {"init": "random", "head": "linear"}, "state_dict": {"w": torch.ones(2)}}
    paths = [tmp_path / f"{name}.ckpt" for name in ("a", "b", "c")]
    torch.save(state, paths[0])
    torch.save(state, paths[1])
    torch.save({**state, "state_dict": {"w": torch.tensor([1.0, 1.5])}}, paths[2])
    assert script.main(["finetune", str(paths[0]), str(paths[1])]) == 0
    assert script.main(["finetune", str(paths[0]), str(paths[2])]) == 1
    assert "1/1 tensors bitwise equal" in capsys.readouterr().out.splitlines()[0]
