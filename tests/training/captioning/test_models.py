"""BMT and BMHRL: parameter-count formulas (meta device), shapes, masks, positional encoding, fusion
gate, goal expansion, exploration, and incremental decoding equal to the full re-run."""

from __future__ import annotations

import math

import pytest
import torch

from tests.training.captioning.fixtures import tiny_cfg
from videxperts.training.captioning.config import COMPAT_KEYS, parse_config
from videxperts.training.captioning.decode import beam_search, greedy, greedy_full, to_sentence
from videxperts.training.captioning.layers import causal_mask, feature_mask, positional_table
from videxperts.training.captioning.models import (
    BMFusionLayer,
    BMHRLSystem,
    BMTCaptioner,
    expand_goals,
    exploration_noise,
)
from videxperts.training.describe import describe_model


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """One torch thread."""


def _desc(name: str, vocab: int) -> dict:
    from videxperts.training.config import read_raw_config

    raw, _ = read_raw_config(name)
    raw["model"]["vocab_size"] = vocab
    return describe_model(raw)


@pytest.mark.parametrize("vocab", [10172, 10184, 57])
def test_bmhrl_counts_equal_the_spec_formulas(vocab):
    d = _desc("anet_bmhrl", vocab)
    assert d["parameters"] == 63_538_721 + 665 * vocab
    assert d["trainable"] == 48_391_716 + 365 * vocab
    c = d["components"]
    assert (c["bm_enc"], c["bm_worker_fus"], c["bm_manager_fus"], c["manager"], c["worker_goal_att"],
            c["critic"]) == (23_379_200, 12_122_322, 12_122_322, 19_264, 748_608, 15_147_005)
    assert c["worker_proj"] == 365 * vocab and c["inputs"] == 300 * vocab
    assert d["value_functions"] == {"worker_value": 531_441, "manager_value": 361_201}
    assert d["phase_trainable"] == {"worker": 36_250_130 + 365 * vocab, "manager": 12_141_586}


def test_published_totals_and_the_unused_fusion_feed_forward():
    d = _desc("anet_bmhrl", 10172)
    assert (d["parameters"], d["trainable"]) == (70_303_101, 52_104_496)
    from videxperts.training.config import read_raw_config

    raw, _ = read_raw_config("anet_bmhrl")
    raw["model"]["compat"]["fusion_unused_ff"] = False
    assert describe_model(raw)["parameters"] == 70_303_101 - 4 * 1_231_148


@pytest.mark.parametrize("vocab", [10172, 99])
def test_bmt_counts_equal_the_spec_formula(vocab):
    d = _desc("anet_bmt", vocab)
    assert d["trainable"] == 47_433_080 + 301 * vocab
    assert d["parameters"] == 47_433_080 + 601 * vocab


def test_published_configs_turn_every_switch_on_and_defaults_are_off():
    from videxperts.training.config import load_config

    cfg = load_config("anet_bmhrl")
    assert all(getattr(cfg.model.compat, k) for k in COMPAT_KEYS)
    assert not any(getattr(parse_config(tiny_cfg(), "<t>").model.compat, k) for k in COMPAT_KEYS)
    assert load_config("anet_bmt").model.compat.pe_per_dim_exponent


def _inputs(cfg, b=3, sv=5, sa=7, length=6, vocab=None):
    g = torch.Generator().manual_seed(0)
    m = cfg.model
    v = torch.rand(b, sv, m.d_vid, generator=g)
    a = torch.rand(b, sa, m.d_aud, generator=g)
    tok = torch.randint(4, vocab or m.vocab_size, (b, length), generator=g)
    tok[0, -2:] = 1  # padded caption
    rows_v = torch.ones(b, sv, dtype=torch.bool)
    rows_v[1, 3:] = False
    return v, a, tok, rows_v, torch.ones(b, sa, dtype=torch.bool)


def test_shapes_and_log_probs():
    cfg = parse_config(tiny_cfg(model={"vocab_size": 30}), "<t>")
    torch.manual_seed(0)
    system = BMHRLSystem(cfg).eval()
    v, a, tok, rv, ra = _inputs(cfg)
    out = system.agent(v, a, tok, rv, ra)
    assert out["logp"].shape == (3, 6, 30)
    assert torch.allclose(out["logp"].logsumexp(-1), torch.zeros(3, 6), atol=1e-5)
    assert out["worker_feat"].shape == out["manager_feat"].shape == (3, 6, 12)
    assert out["goals"].shape == (3, 6, 4) and out["seg"].shape == (3, 6)
    bmt = BMTCaptioner(parse_config(tiny_cfg(model={"vocab_size": 30, "arch": "bmt"}), "<t>")).eval()
    assert bmt(v, a, tok, rv, ra).shape == (3, 6, 30)


def test_masks():
    tok = torch.tensor([[2, 5, 1, 1]])
    m = causal_mask(tok, 1)
    assert m.shape == (1, 4, 4)
    assert m[0].tolist() == [[True, False, False, False], [True, True, False, False],
                            [True, True, False, False], [True, True, False, False]]
    x = torch.tensor([[[0.5, 2.0], [1.0, 3.0], [1.0, 1.0]]])
    rows = torch.tensor([[True, True, False]])
    assert feature_mask(x, rows, pad_value_mask=True).tolist() == [[[True, False, False]]]  # the latent quirk
    assert feature_mask(x, rows, pad_value_mask=False).tolist() == [[[True, True, False]]]


def test_positional_encoding_formulas():
    d = 6
    orig = positional_table(d, 50, per_dim_exponent=True)
    text = positional_table(d, 50, per_dim_exponent=False)
    pos = 7
    for k in range(d):
        f = math.sin if k % 2 == 0 else math.cos
        assert orig[pos, k].item() == pytest.approx(f(pos / 10000 ** (k / d)), abs=1e-6)
        assert text[pos, k].item() == pytest.approx(f(pos / 10000 ** ((k - k % 2) / d)), abs=1e-6)
    assert positional_table(300).shape == (3660, 300)


def test_word_embedding_is_frozen_scaled_and_specials_are_zero():
    cfg = parse_config(tiny_cfg(model={"vocab_size": 20}), "<t>")
    import warnings

    from videxperts.training.captioning.models import build_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        system = build_model(cfg)
    emb = system.agent.inputs.emb_C
    assert not emb.embed.weight.requires_grad
    assert emb.factor == pytest.approx(math.sqrt(12))
    assert emb.embed.weight[:4].abs().sum() == 0
    assert torch.allclose(emb(torch.tensor([5])), emb.embed.weight[5] * math.sqrt(12))
    assert not any(p.requires_grad for p in system.agent.critic.parameters())


def test_fusion_layer_gate_layernorms_and_no_feed_forward():
    layer = BMFusionLayer(12, 8, 16, 16, 2, 0.0, 16, unused_ff=True).eval()
    assert layer.alpha.item() == 0.0
    c, av, va = torch.rand(2, 3, 12), torch.rand(2, 4, 8), torch.rand(2, 5, 16)
    mem = (av, va, torch.ones(2, 1, 4, dtype=torch.bool), torch.ones(2, 1, 5, dtype=torch.bool))
    mask = causal_mask(torch.full((2, 3), 5), 1)
    out = layer(c, mem, mask)
    c1 = layer.res_self(c, lambda x: layer.self_att(x, x, x, mask))
    ca = layer.norm_A(c1 + layer.att_A(layer.res_A.norm(c1), av, av, mem[2]))
    cv = layer.norm_V(c1 + layer.att_V(layer.res_V.norm(c1), va, va, mem[3]))
    assert torch.allclose(out, 0.5 * ca + 0.5 * cv, atol=1e-6)
    with torch.no_grad():
        layer.alpha.fill_(5.0)  # clamped to 2
    g = torch.sigmoid(torch.tensor(2.0))
    assert torch.allclose(layer(c, mem, mask), g * cv + (1 - g) * ca, atol=1e-6)
    layer.ff.fc1.weight.data.fill_(1e6)  # never called
    assert torch.allclose(layer(c, mem, mask), g * cv + (1 - g) * ca, atol=1e-6)


def test_goal_expansion_worked_example():
    g = torch.arange(5, dtype=torch.float)[None, :, None].repeat(1, 1, 2)
    seg = torch.tensor([[1, 0, 0, 1, 0]])
    assert expand_goals(g, seg)[0, :, 0].tolist() == [0, 1, 1, 1, 4]
    # the original's loop, for random labels
    torch.manual_seed(1)
    g, seg = torch.rand(3, 9, 4), torch.randint(0, 2, (3, 9))
    ref = g.clone()
    for b in range(3):
        goal = ref[b, 0].clone()
        for t in range(8):
            if seg[b, t] == 1:
                goal = ref[b, t + 1].clone()
            ref[b, t + 1] = goal
    assert torch.equal(expand_goals(g, seg), ref)


def test_exploration_noise_is_one_shared_vector_with_detached_statistics():
    goals = torch.randn(3, 5, 4, requires_grad=True)
    z = torch.randn(4)
    noise = exploration_noise(goals, z)
    assert noise.shape == (4,) and not noise.requires_grad
    std, mean = torch.std_mean(goals.detach())
    assert torch.allclose(noise, mean / 10 + std / 5 * z - 0.5 * mean / 10, atol=1e-6)
    out = (goals + noise)
    assert torch.allclose(out - goals, noise.expand(3, 5, 4))


@pytest.mark.parametrize("arch", ["bmhrl", "bmt"])
def test_incremental_greedy_equals_the_full_rerun(arch):
    cfg = parse_config(tiny_cfg(model={"vocab_size": 25, "arch": arch, "dropout": 0.1}), "<t>")
    torch.manual_seed(3)
    model = (BMHRLSystem(cfg).agent if arch == "bmhrl" else BMTCaptioner(cfg)).eval()
    with torch.no_grad():  # make the critic fire sometimes so goals switch mid-sentence
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    v, a, _, rv, ra = _inputs(cfg, b=4)
    mem = model.encode(v, a, rv, ra)
    if arch == "bmhrl":  # centre the critic's logits on the 0.25 threshold: goals both switch and carry on
        with torch.no_grad():
            logits = model.critic(model.inputs.emb_C(torch.randint(4, 25, (8, 12))))[0]
            model.critic.out.bias -= logits.median() - math.log(0.25 / 0.75)
    full = greedy_full(model, mem, 4, max_len=15)
    inc = greedy(model, mem, 4, max_len=15)
    assert torch.equal(full, inc)
    if arch == "bmhrl":
        seg = model.segments(model.inputs.emb_C(full))[0]
        assert 0 < seg.float().mean() < 1
    assert full.shape[1] <= 16
    beam1 = beam_search(model, mem, 4, beam=1, max_len=15)
    assert torch.equal(beam1[:, :full.shape[1]], full)
    beam3 = beam_search(model, mem, 4, beam=3, max_len=15)
    assert beam3.shape[0] == 4


def test_sentence_post_processing():
    itos = ["<unk>", "<blank>", "<s>", "</s>", "a", "Red", "ball"]
    assert to_sentence([2, 4, 5, 6, 3, 4], itos) == "A red ball"
    assert to_sentence([2, 3], itos) == ""
