"""Ranking and distillation losses; Ranger/RAdam/Adam, Lookahead and exact checkpoint resume."""

import copy

import pytest
import torch
import torch.nn.functional as F

from videxperts.errors import UserError
from videxperts.training.optim import Lookahead, build_optimizer, build_scheduler
from videxperts.training.retrieval.config import OptimConfig
from videxperts.training.retrieval.losses import distillation_loss, max_margin_ranking_loss


def test_ranking_loss_hand_computed():
    s = torch.tensor([[0.5, 0.3], [0.6, 0.2]])
    m = 0.1
    # t2v: row 0: relu(.1-.5+.3)=0 ; row 1: relu(.1-.2+.6)=.5
    # v2t: col 0: relu(.1-.5+.6)=.2 ; col 1: relu(.1-.2+.3)=.2
    assert max_margin_ranking_loss(s, m).item() == pytest.approx((0 + 0.5 + 0.2 + 0.2) / 4)


def test_ranking_loss_matches_loop_definition():
    torch.manual_seed(0)
    s = torch.randn(5, 5)
    m = 0.2
    terms = []
    for i in range(5):
        for j in range(5):
            if i != j:
                terms.append(max(0.0, m - s[i, i].item() + s[i, j].item()))
                terms.append(max(0.0, m - s[i, i].item() + s[j, i].item()))
    assert max_margin_ranking_loss(s, m).item() == pytest.approx(sum(terms) / len(terms), rel=1e-6)


def test_ranking_loss_zero_when_positives_win_by_margin_and_gradient_direction():
    s = torch.eye(4) * 0.5
    assert max_margin_ranking_loss(s, 0.4).item() == 0.0
    s = torch.zeros(3, 3, requires_grad=True)
    max_margin_ranking_loss(s, 0.1).backward()
    assert (s.grad.diagonal() < 0).all()  # raising positives lowers the loss
    off = s.grad[~torch.eye(3, dtype=torch.bool)]
    assert (off > 0).all()
    with pytest.raises(ValueError):
        max_margin_ranking_loss(torch.zeros(2, 3), 0.1)


def test_distillation_loss_is_weighted_smooth_l1_with_detached_teacher():
    torch.manual_seed(1)
    student = torch.randn(4, 4, requires_grad=True)
    teacher = (torch.randn(4, 4) * 3).requires_grad_()
    loss = distillation_loss(student, teacher, weight=2.5)
    assert loss.item() == pytest.approx(2.5 * F.smooth_l1_loss(student, teacher).item())
    loss.backward()
    assert teacher.grad is None and student.grad is not None


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 1))


def _train(model, opt, sched, steps, seed):
    g = torch.Generator().manual_seed(seed)
    for step in range(steps):
        x = torch.randn(16, 4, generator=g)
        loss = (model(x) - x.sum(1, keepdim=True)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 3 == 2:
            sched.step()


@pytest.mark.parametrize("name", ["ranger", "radam", "adam"])
def test_checkpoint_resume_is_exact(name, tmp_path):
    cfg = OptimConfig(name=name, lr=0.05, weight_decay=0.01, step_gamma=0.9)
    model = _model()
    opt = build_optimizer(model.parameters(), cfg)
    sched = build_scheduler(opt, cfg)
    _train(model, opt, sched, 8, seed=1)  # 8 steps: mid-way through a Lookahead cycle
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict()},
               tmp_path / "ckpt.pt")
    _train(model, opt, sched, 9, seed=2)

    state = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    resumed = _model()
    resumed.load_state_dict(state["model"])
    opt2 = build_optimizer(resumed.parameters(), cfg)
    sched2 = build_scheduler(opt2, cfg)  # built before loading, as a training loop does
    opt2.load_state_dict(state["opt"])
    sched2.load_state_dict(state["sched"])
    _train(resumed, opt2, sched2, 9, seed=2)
    for a, b in zip(model.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]


def test_ranger_is_radam_with_lookahead_half_six():
    model = _model()
    opt = build_optimizer(model.parameters(), OptimConfig(name="ranger", lr=0.1))
    assert isinstance(opt, Lookahead) and isinstance(opt.base, torch.optim.RAdam)
    assert (opt.alpha, opt.k) == (0.5, 6)


def test_lookahead_interpolates_every_k_steps():
    p = torch.nn.Parameter(torch.tensor([1.0]))
    opt = Lookahead(torch.optim.SGD([p], lr=0.1), alpha=0.5, k=3)
    fast = 1.0
    for step in range(1, 7):
        p.grad = torch.tensor([1.0])
        opt.step()
        fast -= 0.1
        if step == 3:
            fast = 1.0 + 0.5 * (fast - 1.0)  # slow starts at 1.0
            slow = fast
        if step == 6:
            fast = slow + 0.5 * (fast - slow)
        assert p.item() == pytest.approx(fast)


def test_scheduler_is_step_lr_per_epoch():
    model = _model()
    cfg = OptimConfig(name="ranger", lr=0.1, step_gamma=0.95)
    opt = build_optimizer(model.parameters(), cfg)
    sched = build_scheduler(opt, cfg)
    for _ in range(2):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * 0.95**2)
    assert opt.base.param_groups[0]["lr"] == pytest.approx(0.1 * 0.95**2)


def test_unknown_optimizer_is_user_error():
    with pytest.raises(UserError, match="sgd"):
        build_optimizer(_model().parameters(), OptimConfig(name="sgd"))


def test_copy_of_state_dict_is_independent():
    model = _model()
    opt = build_optimizer(model.parameters(), OptimConfig(name="ranger", lr=0.1))
    _train(model, opt, build_scheduler(opt, OptimConfig()), 2, seed=0)
    sd = copy.deepcopy(opt.state_dict())
    slow_before = [s.clone() for s in sd["lookahead"]["slow"]]
    _train(model, opt, build_scheduler(opt, OptimConfig()), 6, seed=0)
    for a, b in zip(sd["lookahead"]["slow"], slow_before, strict=True):
        assert torch.equal(a, b)
