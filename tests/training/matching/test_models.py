"""VSRN and DCPG against SPEC-DCPG §1 and the checker list §7: parameter counts of the published
configs (meta device), shapes, GCN, l2norm axis, Gumbel/Normal policy, fused policy loop."""

from __future__ import annotations

import json
import math

import pytest
import torch

from tests.training.matching.tiny import tiny_cfg
from videxperts.training.config import ConfigError, load_config
from videxperts.training.describe import describe_model
from videxperts.training.matching.layers import AttentionPolicy, PolicyNoise, RsGCN, l2norm
from videxperts.training.matching.models import build_model


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _meta(name: str, **model: int) -> torch.nn.Module:
    cfg = load_config(name)
    if model:
        d = cfg.to_dict()
        d["model"].update(model)
        cfg = load_config(d)
    with torch.device("meta"):
        return build_model(cfg)


@pytest.mark.parametrize(("name", "v"), [("f30k_dcpg", 8481), ("coco_dcpg", 10006)])
def test_published_dcpg_counts(name: str, v: int) -> None:
    d = describe_model(name)
    assert d["trainable"] == 201_714_561 + 300 * v
    assert d["parameters"] == 216_696_193 + 558 * v
    assert {"f30k_dcpg": 204_258_861, "coco_dcpg": 204_716_361}[name] == d["trainable"]
    assert {"f30k_dcpg": 221_428_591, "coco_dcpg": 222_279_541}[name] == d["parameters"]


def test_train_describe_json_on_the_published_configs() -> None:
    from click.testing import CliRunner

    from videxperts.pipelines.cli import cli

    for name, trainable, total in (("f30k_dcpg", 204_258_861, 221_428_591), ("f30k_vsrn", 125_601_401, 125_601_401)):
        res = CliRunner().invoke(cli, ["train", "--describe", "--json", "--config", name])
        assert res.exit_code == 0, res.output
        d = json.loads(res.output)
        assert (d["trainable"], d["parameters"], d["task"]) == (trainable, total, "matching")
        assert d["id_classes"] == (113_288 if "dcpg" in name else None)


@pytest.mark.parametrize("v", [5, 777, 8481])
def test_dcpg_blocks_follow_the_formulas(v: int) -> None:
    m = _meta("f30k_dcpg", vocab_size=v)
    assert _count(m.img_enc) == 125_820_982
    assert _count(m.txt_enc) == 16_202_946 + 300 * v
    assert _count(m.id_head) + _count(m.discriminator) == 59_690_633
    assert _count(m.decoder) == 14_981_632 + 258 * v
    dead = _count(m.img_enc.linears) + _count(m.txt_enc.embed) + _count(m.txt_enc.fc_transform)
    assert _count(m.img_enc) + _count(m.txt_enc) - dead == 141_406_380  # used at inference
    assert _count(m.img_enc.gcn) == 67_158_016 and _count(m.img_enc.policy.mu) == 4_097_000


@pytest.mark.parametrize("v", [5, 8481, 10006])
def test_vsrn_counts(v: int) -> None:
    f30k, coco = _meta("f30k_vsrn", vocab_size=v), _meta("coco_vsrn", vocab_size=v)
    assert _count(f30k) == 116_162_048 + 1_113 * v
    assert _count(f30k.img_enc) + _count(f30k.txt_enc) == 110_974_976 + 300 * v
    assert _count(coco.img_enc) + _count(coco.txt_enc) == 110_970_880 + 300 * v
    assert _count(f30k.captioner) == 5_187_072 + 813 * v
    if v == 8481:
        assert describe_model("f30k_vsrn")["parameters"] == 125_601_401
    if v == 10006:
        assert describe_model("coco_vsrn")["parameters"] == 127_294_630


def test_published_configs_turn_every_compat_switch_on_and_defaults_are_fixed() -> None:
    published = load_config("f30k_dcpg").compat
    assert all(getattr(published, f) for f in published.__dataclass_fields__)
    assert load_config("coco_dcpg").compat == published and load_config("coco_dcpg").model.fc_l2norm
    fixed = tiny_cfg().compat
    assert not any(getattr(fixed, f) for f in fixed.__dataclass_fields__)
    assert load_config("f30k_dcpg").id_classes == 113_288
    assert tiny_cfg().id_classes == 64 and tiny_cfg(compat={"id_classes_113288": True}).id_classes == 113_288


def test_config_errors_are_one_line() -> None:
    with pytest.raises(ConfigError, match=r"<tiny>: model.policy.heads: 3 heads must divide"):
        tiny_cfg(model={**tiny_cfg().to_dict()["model"], "policy": {"heads": 3}})
    with pytest.raises(ConfigError, match=r"compat.bogus: unknown key"):
        tiny_cfg(compat={"bogus": True})
    with pytest.raises(ConfigError, match=r"model.kind: unknown value 'scan'"):
        tiny_cfg(model={**tiny_cfg().to_dict()["model"], "kind": "scan"})


def test_gcn_block_is_identity_at_init_and_divides_by_nodes() -> None:
    torch.manual_seed(0)
    block = RsGCN(6).eval()
    v = torch.randn(3, 6, 5)
    assert torch.equal(block(v), v)
    with torch.no_grad():
        block.w[1].weight.fill_(1.0)
    theta, phi, g = block.theta(v), block.phi(v), block.g(v)
    r = theta.transpose(1, 2) @ phi / 5  # no softmax
    y = g @ r.transpose(1, 2)
    assert torch.allclose(block(v), block.w(y) + v, atol=1e-6)


def test_l2norm_axis_compat() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 4, 12)
    fixed = build_model(tiny_cfg()).img_enc
    compat = build_model(tiny_cfg(compat={"l2norm_across_regions": True})).img_enc
    assert torch.allclose(fixed._norm(x).norm(dim=-1), torch.ones(2, 4), atol=1e-5)
    assert torch.allclose(compat._norm(x).norm(dim=1), torch.ones(2, 12), atol=1e-5)
    assert torch.allclose(l2norm(x).norm(dim=-1), torch.ones(2, 4), atol=1e-5)


def test_shapes_of_both_branches() -> None:
    cfg = tiny_cfg()
    m = build_model(cfg).train()
    b, r = 3, cfg.data.regions
    noise = PolicyNoise.draw((b, r, 2, 10), None, torch.device("cpu"))
    emb, feats, trace = m.encode_image(torch.randn(b, r, 12), noise)
    assert emb.shape == (b, 16) and feats.shape == (b, r, 16)
    assert trace.discrete_logp.shape == trace.continuous_logp.shape == trace.weights.shape == (b, r, 2)
    tnoise = PolicyNoise.draw((b, 10, 2, 10), None, torch.device("cpu"))
    cap, ttrace = m.encode_text({"vectors": torch.randn(b, 10, 8), "lengths": torch.tensor([3, 10, 5])}, tnoise)
    assert cap.shape == (b, 16) and ttrace.weights.shape == (b, 10, 2)  # padding slots included


def test_policy_eval_is_the_argmax_bin_and_weights_lie_in_published_range() -> None:
    torch.manual_seed(1)
    pol = AttentionPolicy(6, heads=2, bins=500, tau=0.8, scale=20.0)
    x = torch.randn(4, 7, 6)
    out, trace = pol(x)
    w = trace.weights
    assert (w >= 10.0).all() and (w < 20 * torch.sigmoid(torch.tensor(0.998)) + 1e-6).all()  # [10, 14.61)
    assert float(20 * torch.sigmoid(torch.tensor(0.998))) == pytest.approx(14.61, abs=0.01)
    # first step recomputed by hand: h = GRUCell(x0, 0), bins from softmax(logits / 0.8)
    h = pol.cell(x[:, 0], torch.zeros(4, 6))
    logits = pol.mu(torch.relu(torch.cat([x[:, 0], h], 1))).view(4, 2, 500)
    ind = torch.softmax(logits / 0.8, -1).argmax(-1)
    assert torch.allclose(w[:, 0], 20 * torch.sigmoid(ind / 500.0))
    assert torch.allclose(out[:, 0].view(4, 2, 3), x[:, 0].view(4, 2, 3) * w[:, 0, :, None])
    assert torch.equal(pol(x)[0], out)  # deterministic


def test_policy_training_draws_gumbel_bins_and_normal_values() -> None:
    torch.manual_seed(2)
    pol = AttentionPolicy(4, heads=2, bins=8, tau=0.8, scale=20.0)
    x = torch.randn(3, 1, 4, requires_grad=True)
    noise = PolicyNoise.draw((3, 1, 2, 8), None, torch.device("cpu"))
    out, trace = pol(x, noise)
    h = pol.cell(x[:, 0], torch.zeros(3, 4))
    z = torch.relu(torch.cat([x[:, 0], h], 1))
    logits = pol.mu(z).view(3, 2, 8)
    sigma = torch.exp(0.5 * torch.nn.functional.softplus(pol.logvar(z)))
    assert (sigma >= 1).all()
    y = torch.softmax((logits + noise.gumbel[:, 0]) / 0.8, -1)
    cdf = y.cumsum(-1)
    ind = (cdf < noise.uniform[:, 0, :, None]).sum(-1).clamp(max=7)  # the multinomial redraw
    mu = ind / 8.0
    a = mu + sigma * noise.normal[:, 0]
    assert torch.allclose(trace.weights[:, 0], 20 * torch.sigmoid(a), atol=1e-5)
    assert torch.allclose(trace.discrete_logp[:, 0], torch.log(y.gather(-1, ind[..., None]).squeeze(-1)), atol=1e-5)
    normal = torch.distributions.Normal(mu, sigma)
    assert torch.allclose(trace.continuous_logp[:, 0], normal.log_prob(a), atol=1e-5)
    _, second = pol(x, noise, second_sample=True)  # compat: log-prob of an independent draw
    assert torch.allclose(second.continuous_logp[:, 0], normal.log_prob(mu + sigma * noise.normal2[:, 0]), atol=1e-5)
    # the applied attention carries no gradient to the policy; the log-probs do (straight-through mu)
    out.sum().backward(retain_graph=True)
    assert pol.mu.weight.grad is None or float(pol.mu.weight.grad.abs().sum()) == 0.0
    trace.continuous_logp.sum().backward()
    assert float(pol.mu.weight.grad.abs().sum()) > 0


@pytest.mark.parametrize("training", [False, True])
def test_fused_policy_loop_equals_step_by_step(training: bool) -> None:
    torch.manual_seed(3)
    loop = AttentionPolicy(6, 2, 16, 0.8, 20.0)
    fused = AttentionPolicy(6, 2, 16, 0.8, 20.0, fused=True)
    fused.load_state_dict(loop.state_dict())
    x = torch.randn(5, 9, 6)
    noise = PolicyNoise.draw((5, 9, 2, 16), None, torch.device("cpu")) if training else None
    (a, ta), (b, tb) = loop(x, noise), fused(x, noise)
    assert torch.allclose(a, b, atol=1e-5) and torch.allclose(ta.weights, tb.weights, atol=1e-5)
    assert torch.allclose(ta.discrete_logp, tb.discrete_logp, atol=1e-5)
    assert math.isfinite(float(ta.continuous_logp.detach().sum()))
