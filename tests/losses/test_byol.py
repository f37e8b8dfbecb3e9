"""BYOL's loss against a hand computation: no negatives, normalised MSE to the other view's target."""

import math

import torch

from anaus_pl.losses.byol import byol_loss


def test_byol_loss_matches_two_minus_two_cosine_and_ignores_other_images() -> None:
    p1 = torch.tensor([[[1.0, 0.0]], [[0.0, 2.0]]])  # (B=2, K=1, D=2)
    p2 = torch.tensor([[[1.0, 1.0]], [[3.0, 0.0]]])
    t1 = torch.tensor([[[0.0, 5.0]], [[1.0, 0.0]]])
    t2 = torch.tensor([[[1.0, 1.0]], [[0.0, 1.0]]])
    # image 0: cos(p1, t2) = 1/sqrt2, cos(p2, t1) = 1/sqrt2; image 1: cos = 1 and 1
    expected = ((2 - math.sqrt(2)) + 0.0) / 2 + ((2 - math.sqrt(2)) + 0.0) / 2
    assert math.isclose(byol_loss(p1, p2, t1, t2).item(), expected, rel_tol=1e-6)
    # no negatives: replacing image 1 changes nothing about image 0's gradient
    p1.requires_grad_(True)
    (grad_a,) = torch.autograd.grad(byol_loss(p1, p2, t1, t2), p1)
    t1_other, t2_other = t1.clone(), t2.clone()
    t1_other[1], t2_other[1] = torch.tensor([[7.0, -3.0]]), torch.tensor([[-1.0, 4.0]])
    (grad_b,) = torch.autograd.grad(byol_loss(p1, p2, t1_other, t2_other), p1)
    assert torch.equal(grad_a[0], grad_b[0])
    valid = torch.tensor([[True], [False]])
    assert math.isclose(byol_loss(p1, p2, t1, t2, valid).item(), 2 * (2 - math.sqrt(2)), rel_tol=1e-6)


def test_targets_get_no_gradient() -> None:
    p = torch.randn(2, 3, 4, requires_grad=True)
    t = torch.randn(2, 3, 4, requires_grad=True)
    byol_loss(p, p, t, t).backward()
    assert t.grad is None and p.grad is not None
