"""Ranking and distillation losses; Ranger/RAdam/Adam, Lookahead and exact checkpoint resume."""

import copy

import pytest
import torch
import torch.nn.functional as F

from videxperts.errors import UserError
from videxperts.training.optim import Lookahead, RAdamW, build_optimizer, build_scheduler, radam_step_size
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


def test_ranger_uses_the_published_settings():
    model = _model()
    opt = build_optimizer(model.parameters(), OptimConfig(name="ranger", lr=0.1))
    assert isinstance(opt, Lookahead) and isinstance(opt.base, RAdamW)
    assert (opt.alpha, opt.k) == (0.5, 6)
    assert opt.base.defaults["betas"] == (0.95, 0.999) and opt.base.defaults["eps"] == 1e-5


def _published_ranger(p0, grads, lr, wd, beta1=0.95, beta2=0.999, eps=1e-5, alpha=0.5, k=6):
    """The published Ranger written out per scalar: decoupled decay, RAdam's rectification
    (ρ_t > 5), Lookahead every k steps from slow weights taken at the first step."""
    rho_inf = 2 / (1 - beta2) - 1
    p, m, v, slow, out = list(p0), [0.0] * len(p0), [0.0] * len(p0), list(p0), []
    for t, g in enumerate(grads, start=1):
        rho = rho_inf - 2 * t * beta2**t / (1 - beta2**t)
        for i, gi in enumerate(g):
            p[i] -= wd * lr * p[i]
            m[i] = beta1 * m[i] + (1 - beta1) * gi
            v[i] = beta2 * v[i] + (1 - beta2) * gi * gi
            if rho > 5:
                r = (rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho)
                step = lr * ((1 - beta2**t) * r) ** 0.5 / (1 - beta1**t)
                p[i] -= step * m[i] / (v[i] ** 0.5 + eps)
            else:
                p[i] -= lr / (1 - beta1**t) * m[i]
            if t % k == 0:
                slow[i] += alpha * (p[i] - slow[i])
                p[i] = slow[i]
        out.append(list(p))
    return out


def test_ranger_trajectory_matches_the_published_algorithm_by_hand():
    """14 steps: the momentum-only steps (ρ_t ≤ 5, t ≤ 6), the rectified ones, and two
    Lookahead syncs. Gradients are fixed in advance, so only the update rule is tested."""
    lr, wd = 0.1, 1e-3
    p0 = [0.5, -1.25, 2.0]
    g = torch.Generator().manual_seed(3)
    grads = (torch.randn(14, 3, generator=g, dtype=torch.float64) * torch.tensor([1.0, 1e-3, 10.0])).tolist()
    expected = _published_ranger(p0, grads, lr, wd)
    param = torch.nn.Parameter(torch.tensor(p0, dtype=torch.float64))
    opt = build_optimizer([param], OptimConfig(name="ranger", lr=lr, weight_decay=wd))
    for t, grad in enumerate(grads):
        param.grad = torch.tensor(grad, dtype=torch.float64)
        opt.step()
        assert param.detach().tolist() == pytest.approx(expected[t], rel=1e-12, abs=1e-14), f"step {t + 1}"
    # step 1 by hand: m = 0.05 g, bias correction 1/0.05, so p moves by exactly lr·g (+ decay)
    first = [x * (1 - lr * wd) - lr * gx for x, gx in zip(p0, grads[0], strict=True)]
    assert expected[0] == pytest.approx(first, rel=1e-12)


def test_radam_step_size_switches_to_rectified_after_six_steps():
    flags = [radam_step_size(t, 0.95, 0.999)[1] for t in range(1, 9)]
    assert flags == [False] * 5 + [True] * 3  # ρ_6 ≈ 5.0025 > 5


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


def test_radamw_blocks_give_the_same_bits_as_whole_tensors(monkeypatch):
    """Large tensors are updated block by block; the update is element-wise, so the result
    must equal the whole-tensor update exactly (a block boundary inside every large tensor)."""
    from videxperts.training import optim

    monkeypatch.setattr(optim, "FUSED", False)  # the blocked path; the fused one is tested below

    def trajectory(block):
        monkeypatch.setattr(optim, "BLOCK", block)
        torch.manual_seed(0)
        params = [torch.nn.Parameter(torch.randn(n)) for n in (1000, 37, 2500)]
        opt = build_optimizer(params, OptimConfig(name="ranger", lr=0.1, weight_decay=1e-3))
        g = torch.Generator().manual_seed(1)
        for _ in range(8):  # momentum-only steps, rectified steps and a Lookahead sync
            for p in params:
                p.grad = torch.randn(p.shape, generator=g)
            opt.step()
        return [p.detach().clone() for p in params]

    for a, b in zip(trajectory(1 << 20), trajectory(64), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_radamw_fused_kernel_follows_the_blocked_update(monkeypatch, dtype):
    """Large CPU tensors take torch's fused AdamW kernel once RAdam rectifies (lr, eps and decay
    mapped, `optim._fused_rectified`): 20 steps stay within float rounding of the blocked path,
    the momentum-only steps included, and small tensors are untouched by the switch."""
    from videxperts.training import optim

    monkeypatch.setattr(optim, "BLOCK", 64)

    def trajectory(fused):
        monkeypatch.setattr(optim, "FUSED", fused)
        torch.manual_seed(0)
        params = [torch.nn.Parameter(torch.randn(n, dtype=dtype)) for n in (1000, 37, 2500)]
        opt = build_optimizer(params, OptimConfig(name="ranger", lr=0.1, weight_decay=1e-3))
        g = torch.Generator().manual_seed(1)
        for _ in range(20):
            for p in params:
                p.grad = torch.randn(p.shape, generator=g, dtype=dtype)
            opt.step()
        return [p.detach().clone() for p in params]

    calls = []
    real = optim._fused_rectified
    monkeypatch.setattr(optim, "_fused_rectified", lambda *a: calls.append(a[4]) or real(*a))
    ulp = torch.finfo(dtype).eps
    fused, blocked = trajectory(True), trajectory(False)
    assert calls == list(range(6, 21))  # rectified from step 6 (ρ_t > 5), both large tensors at once
    for a, b in zip(fused, blocked, strict=True):
        torch.testing.assert_close(a, b, rtol=8 * ulp, atol=8 * ulp)
    assert torch.equal(fused[1], blocked[1])  # 37 elements: the multi-tensor path either way
