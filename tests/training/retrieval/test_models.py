"""CE and its ablations: published architecture sizes, forward/backward for every variant,
missing-expert masking, and the concat padding fix."""

import copy
import json
from pathlib import Path

import pytest
import torch

from videxperts.training.describe import describe_model, format_description
from videxperts.training.retrieval.config import VARIANTS, load_config
from videxperts.training.retrieval.models import build_model, cat_embeddings, slice_embeddings

CONFIGS = Path(__file__).resolve().parents[3] / "configs" / "train"
TEXT_DIM, TEXT_LEN = 12, 6


def small_cfg(variant="ce", **model):
    raw = {
        "name": f"tiny-{variant}",
        "data": {
            "experts": {
                "scene": {"dim": 10, "temporal": "mean"},
                "face": {"dim": 6, "temporal": "mean"},
                "audio": {"dim": 4, "temporal": "vlad", "clusters": 3, "max_tokens": 5},
                "ocr": {"dim": 7, "temporal": "vlad", "clusters": 2, "max_tokens": 4},
            },
            "text": {"encoder": "toy", "dim": TEXT_DIM, "max_tokens": TEXT_LEN, "max_captions": 2},
        },
        "model": {"variant": variant, "shared_dim": 8, "text_vlad": {"clusters": 3, "ghosts": 1}, **model},
    }
    return load_config(raw)


def random_batch(cfg, b=6, seed=0, all_available=False):
    g = torch.Generator().manual_seed(seed)
    experts, masks = {}, {}
    for name in cfg.expert_names:
        e = cfg.data.experts[name]
        if e.temporal == "vlad":
            experts[name] = torch.randn(b, e.max_tokens, e.dim, generator=g)
            m = torch.rand(b, e.max_tokens, generator=g) > 0.3
            m[:, 0] = True
            masks[name] = m
        else:
            experts[name] = torch.randn(b, e.dim, generator=g)
    available = torch.ones(b, len(cfg.expert_names), dtype=torch.bool)
    if not all_available:
        available = torch.rand(b, len(cfg.expert_names), generator=g) > 0.3
        available[:, 0] = True
    tokens = torch.randn(b, TEXT_LEN, TEXT_DIM, generator=g)
    tmask = torch.rand(b, TEXT_LEN, generator=g) > 0.2
    tmask[:, 0] = True
    return experts, masks, available, tokens, tmask


# ------------------------------------------------------------------ published configurations

def lin(i, o):
    return i * o + o


def bn(c):
    return 2 * c


def vlad(d, k, g=0):
    return d * (k + g) + bn(k + g) + d * k


def geu(i, o):
    return lin(i, o) + lin(o, o) + bn(o)


def test_msrvtt_ce_matches_published_architecture():
    """Parameter count derived by hand from SPEC-CE.md's MSR-VTT CE description."""
    d, dt, kt, gt = 768, 768, 28, 1
    mean_dims = {"scene": 2208, "inst": 2048, "rgb": 2048, "i3d": 1024, "r2p1d": 512, "face": 512}
    vlad_experts = {"audio": (128, 8), "speech": (300, 19), "ocr": (300, 43)}
    e = len(mean_dims) + len(vlad_experts)
    expected = vlad(dt, kt, gt) + lin(kt * dt, e)  # text VLAD + mixture weights
    expected += e * geu(kt * dt, d)  # one text GEU per expert
    expected += sum(lin(i, d) for i in mean_dims.values())  # ReduceDim
    expected += sum(vlad(dim, k) + lin(k * dim, d) for dim, k in vlad_experts.values())
    expected += lin(2 * d, d) + 2 * (bn(d) + lin(d, d))  # shared g, num_g_layers = 3
    expected += e * (lin(d, d) + 2 * bn(d))  # reasoning gates
    desc = describe_model(CONFIGS / "msrvtt_ce.yaml")
    assert desc["parameters"] == expected == 183_448_607
    assert sum(desc["components"].values()) == desc["parameters"]
    assert desc["components"]["video_vlad.ocr"] == vlad(300, 43)
    assert desc["components"]["text_proj.scene"] == geu(kt * dt, d)
    json.dumps(desc)  # --json must work
    assert "msrvtt-ce" in format_description(desc)

    with torch.device("meta"):
        model = build_model(load_config(CONFIGS / "msrvtt_ce.yaml"))
    assert model.expert_names == sorted([*mean_dims, *vlad_experts])
    assert model.text_vlad.assign.shape == (768, 29) and model.text_vlad.centres.shape == (768, 28)
    assert model.video_proj["speech"].fc.weight.shape == (768, 19 * 300)
    assert model.collab.g_in.weight.shape == (768, 1536) and len(model.collab.g_layers) == 2
    assert model.mixture.weight.shape == (9, 28 * 768)


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_config_builds(path):
    """Every shipped training config, whatever its task, builds and describes consistently."""
    from videxperts.training.config import load_config as load_any_config
    from videxperts.training.task import task_of

    cfg = load_any_config(str(path))
    with torch.device("meta"):
        model = task_of(cfg).build_model(cfg)
    assert sum(p.numel() for p in model.parameters()) > 0
    desc = describe_model(cfg)
    assert sum(desc["components"].values()) == desc["parameters"]


def test_ablation_shapes():
    moee = describe_model(CONFIGS / "msrvtt_moee.yaml")
    # MoEE: GEU to the expert's native dim; VLAD experts: K·D -> D (audio 27 clusters)
    assert moee["components"]["video_proj.audio"] == geu(27 * 128, 128)
    assert moee["components"]["text_proj.scene"] == geu(50 * 768, 2208)
    assert "collab" not in moee["components"]
    uniform = describe_model(CONFIGS / "msrvtt_moee_uniform.yaml")
    assert uniform["components"]["mixture"] == lin(28 * 768, 9)  # the weight layer still exists
    no_cg = describe_model(CONFIGS / "msrvtt_ce_no_cg.yaml")
    assert no_cg["components"]["video_gate.scene"] == lin(768, 768) + bn(768)
    concat = describe_model(CONFIGS / "msrvtt_concat.yaml")
    assert set(concat["components"]) == {"video_vlad.audio", "video_vlad.ocr", "video_vlad.speech", "text_vlad",
                                         "mixture"}
    assert concat["components"]["text_vlad"] == vlad(768, 39, 1)
    assert concat["components"]["mixture"] == lin(39 * 768, 9)  # compat: built, never used


# The published parameter counts (SPEC-CE.md's configurations; checked side by side with the
# published code module by module, issue 13). Concat includes the mixture layer the published
# code builds and never uses (`model.compat.concat_mixture`).
PUBLISHED_COUNTS = {
    "msrvtt_ce": 183_448_607,
    "msrvtt_ce_no_cg": 181_070_111,
    "msrvtt_moee": 400_410_129,
    "msrvtt_moee_uniform": 246_219_775,
    "msrvtt_concat": 369_717,
    "lsmdc_ce": 116_857_599,
    "lsmdc_ce_no_cg": 114_479_103,
    "lsmdc_moee": 159_776_655,
    "lsmdc_moee_uniform": 159_776_655,
    "lsmdc_concat": 150_631,
}


@pytest.mark.parametrize("name", sorted(PUBLISHED_COUNTS))
def test_every_published_config_describes_to_the_published_count(name):
    desc = describe_model(CONFIGS / f"{name}.yaml")
    assert desc["parameters"] == PUBLISHED_COUNTS[name]


def test_every_msrvtt_and_lsmdc_config_has_a_published_count():
    shipped = {p.stem for p in CONFIGS.glob("*.yaml") if p.stem.startswith(("msrvtt_", "lsmdc_"))}
    assert shipped == set(PUBLISHED_COUNTS)


def test_concat_counts_by_hand_and_clean_default_has_no_mixture():
    """LSMDC Concat: text VLAD 300-d, 39 clusters, no ghosts; VLAD experts audio 3, speech 5, ocr 30."""
    expected = vlad(300, 39) + vlad(128, 3) + vlad(300, 5) + vlad(300, 30) + lin(39 * 300, 9)
    assert describe_model(CONFIGS / "lsmdc_concat.yaml")["parameters"] == expected == 150_631
    raw = load_config(CONFIGS / "lsmdc_concat.yaml").to_dict()
    raw["model"]["compat"] = {}
    assert describe_model(raw)["parameters"] == expected - lin(39 * 300, 9)


# ------------------------------------------------------------------ every variant runs

@pytest.mark.parametrize("variant", VARIANTS)
def test_forward_backward_every_variant(variant):
    torch.manual_seed(0)
    cfg = small_cfg(variant, num_h_layers=1)
    model = build_model(cfg).train()
    experts, masks, available, tokens, tmask = random_batch(cfg, all_available=True)
    sims = model(experts, masks, available, tokens, tmask)
    assert sims.shape == (6, 6) and torch.isfinite(sims).all()
    assert sims.abs().max() <= 1.0 + 1e-5  # convex mix of cosines
    (sims.diagonal().sum() - sims.sum() / 6).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    text = model.encode_text(tokens, tmask)
    video = model.encode_video(experts, masks, available)
    per = model.expert_similarities(text, video)
    assert per.shape == ((1,) if variant == "concat" else (4,)) + (6, 6)
    # with missing experts too
    experts, masks, available, tokens, tmask = random_batch(cfg, seed=1)
    assert torch.isfinite(model(experts, masks, available, tokens, tmask)).all()


@pytest.mark.parametrize("variant", ["ce", "ce_no_cg", "moee", "moee_uniform"])
def test_missing_expert_weight_zeroed_and_renormalised(variant):
    torch.manual_seed(1)
    cfg = small_cfg(variant)
    model = build_model(cfg).eval()
    experts, masks, available, tokens, tmask = random_batch(cfg, all_available=True)
    available[2, 1] = False  # video 2 lacks expert 1 (face; order audio, face, ocr, scene)
    available[4, 3] = False  # video 4 lacks expert 3 (scene)
    text = model.encode_text(tokens, tmask)
    video = model.encode_video(experts, masks, available)
    per = model.expert_similarities(text, video)  # [E, C, B]
    w = text["weights"]
    sims = model.similarity(text, video)
    for b in range(6):
        have = available[b]
        ww = w[:, have] / w[:, have].sum(1, keepdim=True)
        manual = (ww.T * per[have, :, b]).sum(0)
        torch.testing.assert_close(sims[:, b], manual)
    assert torch.count_nonzero(per[1, :, 2]) == 0  # missing expert contributes nothing
    if variant == "moee_uniform":
        torch.testing.assert_close(w, torch.full_like(w, 0.25))


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_missing_expert_content_is_ignored(variant, mode):
    """Whatever sits in a missing expert's slot (even NaN) changes no similarity, and the
    BatchNorm statistics ignore it too."""
    torch.manual_seed(2)
    cfg = small_cfg(variant)
    a = build_model(cfg).train(mode == "train")
    b = copy.deepcopy(a)
    experts, masks, available, tokens, tmask = random_batch(cfg, seed=3)
    available[1, :] = True
    available[0, 1] = available[3, 2] = False
    garbage = {k: v.clone() for k, v in experts.items()}
    garbage["face"][0] = float("nan")
    garbage["ocr"][3] = 1e6
    torch.testing.assert_close(a(experts, masks, available, tokens, tmask),
                               b(garbage, masks, available, tokens, tmask))
    for (name, ba), bb in zip(a.named_buffers(), b.buffers(), strict=True):
        torch.testing.assert_close(ba, bb, msg=name)


@pytest.mark.parametrize("variant", ["ce_no_cg", "moee"])
def test_without_collaborative_gating_experts_are_independent(variant):
    torch.manual_seed(3)
    cfg = small_cfg(variant)
    model = build_model(cfg).eval()
    experts, masks, available, *_ = random_batch(cfg, all_available=True)
    full = model.encode_video(experts, masks, available)
    fewer = available.clone()
    fewer[:, 1] = False
    part = model.encode_video(experts, masks, fewer)
    assert torch.count_nonzero(part["face"]) == 0
    for n in ("audio", "ocr", "scene"):
        torch.testing.assert_close(full[n], part[n])


def test_collaborative_gating_uses_other_experts():
    torch.manual_seed(4)
    cfg = small_cfg("ce")
    model = build_model(cfg).eval()
    experts, masks, available, *_ = random_batch(cfg, all_available=True)
    fewer = available.clone()
    fewer[:, 1] = False
    assert not torch.allclose(model.encode_video(experts, masks, available)["scene"],
                              model.encode_video(experts, masks, fewer)["scene"])


@pytest.mark.parametrize("variant", VARIANTS)
def test_chunked_encoding_matches_full_in_eval(variant):
    torch.manual_seed(5)
    cfg = small_cfg(variant)
    model = build_model(cfg).eval()
    experts, masks, available, tokens, tmask = random_batch(cfg, b=7)
    full_t, full_v = model.encode_text(tokens, tmask), model.encode_video(experts, masks, available)
    parts_t = [model.encode_text(tokens[i:i + 3], tmask[i:i + 3]) for i in range(0, 7, 3)]
    parts_v = [model.encode_video({k: v[i:i + 3] for k, v in experts.items()},
                                  {k: v[i:i + 3] for k, v in masks.items()}, available[i:i + 3])
               for i in range(0, 7, 3)]
    for full, parts in ((full_t, parts_t), (full_v, parts_v)):
        joined = cat_embeddings(parts)
        assert joined.keys() == full.keys()
        for k in full:
            torch.testing.assert_close(joined[k], full[k])
    torch.testing.assert_close(model.similarity(slice_embeddings(full_t, 2, 5), full_v),
                               model.similarity(full_t, full_v)[2:5])


@pytest.mark.parametrize("text_clusters", [20, 1])
def test_concat_pads_instead_of_zeroing_video(text_clusters):
    """Text VLAD 20·12 = 240 > video 10+6+3·4+2·7 = 42 (the published bug's case) and 12 < 42."""
    cfg = small_cfg("concat", text_vlad={"clusters": text_clusters, "ghosts": 0})
    model = build_model(cfg).eval()
    experts, masks, available, tokens, tmask = random_batch(cfg, all_available=True)
    text, video = model.encode_text(tokens, tmask), model.encode_video(experts, masks, available)
    assert text["concat"].shape[1] == video["concat"].shape[1] == max(42, 12 * text_clusters)
    torch.testing.assert_close(video["concat"].norm(dim=1), torch.ones(6))
    assert torch.count_nonzero(video["concat"][:, :42]) > 0
    sims = model.similarity(text, video)
    assert torch.count_nonzero(sims) == sims.numel()


def test_concat_compat_order_and_unused_mixture_layer():
    order = ["scene", "audio", "ocr", "face"]
    cfg = small_cfg("concat", compat={"concat_mixture": True, "concat_order": order})
    model = build_model(cfg).eval()
    experts, masks, available, tokens, tmask = random_batch(cfg, all_available=True)
    video = model.encode_video(experts, masks, available)["concat"]
    # the first 10 columns are scene's (dim 10, mean expert), before the normalisation's scale
    scene = experts["scene"] / video.new_tensor(1.0)
    ratio = video[:, :10] / scene
    torch.testing.assert_close(ratio, ratio[:, :1].expand_as(ratio))
    clean = build_model(small_cfg("concat")).eval()
    clean.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("mixture")})
    assert not torch.allclose(clean.encode_video(experts, masks, available)["concat"], video)
    # the unused layer is in the graph with a zero gradient (DDP needs every parameter used)
    model.train()
    model(experts, masks, available, tokens, tmask).sum().backward()
    assert model.mixture.weight.grad is not None and torch.count_nonzero(model.mixture.weight.grad) == 0


def _sequential_reference(model, reduced, avail):
    """The published rule written out: expert by expert in sorted order; pairs (i, j) from the
    current embeddings (gated for j < i); each pair's BatchNorm from that pair's own batch."""
    cg = model.collab
    current = list(reduced)
    for i, name in enumerate(model.expert_names):
        total, count = 0, 0
        for j in range(len(current)):
            y = cg.g_in(torch.cat([current[i], current[j]], dim=1))
            for layer in cg.g_layers:
                y = torch.nn.functional.batch_norm(y, None, None, layer.bn.weight, layer.bn.bias, True, 0.0,
                                                   layer.bn.eps)
                y = layer.fc(torch.nn.functional.mish(y))
            total, count = total + y, count + 1
        current[i] = model.video_gate[name](reduced[i], total / count, avail[:, i])
    return current


def test_sequential_gating_reproduces_the_published_rule_in_training_mode():
    torch.manual_seed(11)
    cfg = small_cfg("ce", compat={"sequential_gating": True})
    model = build_model(cfg).train()
    experts, masks, available, *_ = random_batch(cfg, b=8, all_available=True)
    out = model.encode_video(experts, masks, available)
    pooled = {n: (model.video_vlad[n](experts[n], masks[n]) if n in model.video_vlad else experts[n])
              for n in model.expert_names}
    reduced = [model.video_proj[n](pooled[n]) for n in model.expert_names]
    expected = _sequential_reference(model, reduced, available)
    for n, e in zip(model.expert_names, expected, strict=True):
        torch.testing.assert_close(out[n], e, rtol=1e-5, atol=1e-6)


def test_sequential_and_clean_gating_agree_in_eval_and_differ_in_training():
    torch.manual_seed(12)
    compat = build_model(small_cfg("ce", compat={"sequential_gating": True}))
    clean = build_model(small_cfg("ce"))
    clean.load_state_dict(compat.state_dict())
    batch = random_batch(small_cfg("ce"), b=8)
    with torch.no_grad():
        a, b = compat.eval()(*batch), clean.eval()(*batch)
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
        a, b = compat.train()(*batch), clean.train()(*batch)
    assert not torch.allclose(a, b, atol=1e-3)


def test_input_errors_are_clear():
    cfg = small_cfg()
    model = build_model(cfg)
    experts, masks, available, *_ = random_batch(cfg)
    with pytest.raises(ValueError, match="available"):
        model.encode_video(experts, masks, available[:, :2])
    del experts["scene"]
    with pytest.raises(KeyError, match="scene"):
        model.encode_video(experts, masks, available)


def test_chunked_metrics_from_model_embeddings_match_full_matrix():
    from videxperts.training.retrieval.metrics import retrieval_metrics, retrieval_metrics_from_embeddings

    torch.manual_seed(6)
    cfg = small_cfg("ce")
    model = build_model(cfg).eval()
    experts, masks, available, tokens, tmask = random_batch(cfg, b=5, seed=7)
    captions = torch.cat([tokens, tokens.flip(1)])  # two captions per video
    cmask = torch.cat([tmask, tmask.flip(1)])
    cv = torch.arange(5).repeat(2)
    with torch.no_grad():
        text, video = model.encode_text(captions, cmask), model.encode_video(experts, masks, available)
        full = retrieval_metrics(model.similarity(text, video), cv)
    assert retrieval_metrics_from_embeddings(text, video, model, cv, chunk=3, video_chunk=2) == full


def test_ce_learns_a_toy_retrieval_problem():
    """Experts and captions are noisy views of one latent per video; a few Adam steps on the
    ranking loss must lift train-set R@1 far above chance (1/32)."""
    from videxperts.training.retrieval.losses import max_margin_ranking_loss
    from videxperts.training.retrieval.metrics import retrieval_metrics

    g = torch.Generator().manual_seed(0)
    n = 32
    z = torch.randn(n, 6, generator=g)
    cfg = load_config({
        "task": "retrieval",
        "name": "learn",
        "data": {"experts": {"scene": {"dim": 16}, "face": {"dim": 8},
                             "audio": {"dim": 6, "temporal": "vlad", "clusters": 2, "max_tokens": 4}},
                 "text": {"encoder": "toy", "dim": 10, "max_tokens": 5}},
        "model": {"variant": "ce", "shared_dim": 16, "text_vlad": {"clusters": 2, "ghosts": 1}},
    })

    def view(dim):
        return z @ torch.randn(6, dim, generator=g)

    experts = {"scene": view(16) + 0.1 * torch.randn(n, 16, generator=g),
               "face": view(8) + 0.1 * torch.randn(n, 8, generator=g),
               "audio": view(6)[:, None] + 0.3 * torch.randn(n, 4, 6, generator=g)}
    masks = {"audio": torch.ones(n, 4, dtype=torch.bool)}
    available = torch.ones(n, 3, dtype=torch.bool)
    available[::5, 1] = False  # some videos lack a face
    tokens = view(10)[:, None] + 0.3 * torch.randn(n, 5, 10, generator=g)
    tmask = torch.ones(n, 5, dtype=torch.bool)

    torch.manual_seed(0)
    model = build_model(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(40):
        idx = torch.randperm(n)[:16]
        sims = model({k: v[idx] for k, v in experts.items()}, {"audio": masks["audio"][idx]}, available[idx],
                     tokens[idx], tmask[idx])
        loss = max_margin_ranking_loss(sims, 0.1)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        metrics = retrieval_metrics(model(experts, masks, available, tokens, tmask), torch.arange(n))
    assert metrics["t2v"]["R1"] >= 50.0, metrics


def test_collaborative_gating_matches_pairwise_definition():
    """g_i = mean over available j of g([x_i; x_j]) with g = Linear(2d->d), 2 × [BN, Mish, Linear]."""
    from videxperts.training.retrieval.models import CollaborativeGating

    torch.manual_seed(8)
    cg = CollaborativeGating(8, num_g_layers=3).eval()
    with torch.no_grad():
        for layer in cg.g_layers:
            layer.bn.running_mean.normal_()
            layer.bn.running_var.uniform_(0.5, 2)
    x = torch.randn(4, 3, 8)
    avail = torch.tensor([[1, 1, 1], [1, 0, 1], [0, 1, 0], [1, 1, 0]], dtype=torch.bool)
    out = cg(x, avail)

    def g(v):
        y = cg.g_in(v)
        for layer in cg.g_layers:
            bn = layer.bn
            y = (y - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
            y = layer.fc(torch.nn.functional.mish(y))
        return y

    for b in range(4):
        for i in range(3):
            if not avail[b, i]:
                assert torch.count_nonzero(out[b, i]) == 0
                continue
            pairs = [g(torch.cat([x[b, i], x[b, j]])) for j in range(3) if avail[b, j]]
            torch.testing.assert_close(out[b, i], torch.stack(pairs).mean(0), rtol=1e-5, atol=1e-6)


def test_geu_and_reasoning_gate_formulas():
    from videxperts.training.retrieval.models import GatedEmbeddingUnit, ReasoningGate

    torch.manual_seed(9)

    def bn(mod, v):
        return (v - mod.running_mean) / torch.sqrt(mod.running_var + mod.eps) * mod.weight + mod.bias

    geu = GatedEmbeddingUnit(5, 4).eval()
    x = torch.randn(3, 5)
    y = geu.fc(x)
    expected = torch.nn.functional.normalize(y * torch.sigmoid(bn(geu.cg.bn, geu.cg.fc(y))), dim=1)
    torch.testing.assert_close(geu(x), expected)

    gate = ReasoningGate(4).eval()
    with torch.no_grad():
        gate.bn_g.running_mean.normal_()
        gate.bn_x.running_var.uniform_(0.5, 2)
    x, gi = torch.randn(3, 4), torch.randn(3, 4)
    expected = torch.nn.functional.normalize(x * torch.sigmoid(bn(gate.bn_g, gi) + bn(gate.bn_x, gate.fc(x))), dim=1)
    torch.testing.assert_close(gate(x, gi), expected)


ORIGINAL_NAMES = {"audio": "audio", "face": "face", "i3d": "i3d.i3d.0", "inst": "imagenet.resnext101_32x48d.0",
                  "rgb": "imagenet.senet154.0", "ocr": "ocr", "r2p1d": "r2p1d.r2p1d-ig65m.0",
                  "scene": "scene.densenet161.0", "speech": "speech"}


@pytest.mark.parametrize("name", ["msrvtt_concat", "lsmdc_concat"])
def test_published_concat_configs_use_the_originals_expert_order(name):
    """The original sorts its own modality names (utils.compute_dims) and concatenates in that
    order; the published Concat configs reproduce it under compat, the clean default sorts ours."""
    from videxperts.resources import config_path
    from videxperts.training.config import load_config as load_any_config

    cfg = load_any_config(str(config_path("train", name)))
    experts = list(cfg.data.experts)
    expected = sorted(experts, key=lambda e: ORIGINAL_NAMES[e])
    assert cfg.model.compat.concat_order == expected != sorted(experts)
    with torch.device("meta"):
        assert build_model(cfg).concat_order == expected
