"""Losses, rewards, data rules and the compat switches of training and evaluation (SPEC-DCPG §2, §3.1, §7)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.training.matching.tiny import tiny_cfg, tiny_splits
from videxperts.training.matching.data import decoder_labels, global_batches, vector_slots
from videxperts.training.matching.layers import PolicyTrace
from videxperts.training.matching.losses import advantages, hinge_loss, in_batch_rewards, pg_losses
from videxperts.training.matching.models import build_model
from videxperts.training.matching.task import MatchingTask, encode_split
from videxperts.training.matching.vocab import END, UNK, Vocabulary, tokenize

# S = img . cap^T = S_TOY with img = I (so cap_j is column j of S_TOY)
S_TOY = torch.tensor([[0.9, 0.8, 0.1], [0.4, 0.5, 0.6], [0.2, 0.1, 0.7]])


def test_hinge_on_a_3x3_toy_worked_by_hand() -> None:
    img, cap = torch.eye(3), S_TOY.t().contiguous()
    # i2t rows: max(0.1, 0) + max(0.1, 0.3) + 0 ; t2i columns: 0 + 0.5 + 0.1
    assert float(hinge_loss(img, cap, 0.2, max_violation=True)) == pytest.approx(1.0)
    # every violation summed: 0.1 + 0.1 + 0.3 + 0.5 + 0.1
    assert float(hinge_loss(img, cap, 0.2, max_violation=False)) == pytest.approx(1.1)
    # + text-text: cap0 . cap1 = 0.94 -> 0.14 in columns 0 and 1 (image-image: identity, nothing)
    assert float(hinge_loss(img, cap, 0.2, max_violation=True, intra_modal=True)) == pytest.approx(1.28)


def test_reward_of_aligned_embeddings_is_8_and_the_advantage_4_or_0() -> None:
    e = torch.nn.functional.normalize(torch.randn(10, 6), dim=1)
    r = in_batch_rewards(e, e)
    assert torch.allclose(r, torch.full((10,), 8.0))
    assert torch.allclose(advantages(r, halved_baseline=True), torch.full((10,), 4.0))  # published
    assert torch.allclose(advantages(r), torch.zeros(10))  # leave-one-out baseline


def test_reward_of_random_embeddings_follows_the_definition() -> None:
    g = torch.Generator().manual_seed(0)
    img = torch.nn.functional.normalize(torch.randn(12, 5, generator=g), dim=1)
    cap = torch.nn.functional.normalize(torch.randn(12, 5, generator=g), dim=1)
    s = (img @ cap.t()).numpy()
    d_i2t = np.linalg.norm(img.numpy()[:, None] - cap.numpy()[None], axis=2)  # the original's Euclidean ranking
    rank_i2t = np.array([np.argsort(d_i2t[j]).tolist().index(j) for j in range(12)])
    rank_t2i = np.array([np.argsort(-s[:, j]).tolist().index(j) for j in range(12)])
    rs = sum(np.mean(rank_i2t < k) + np.mean(rank_t2i < k) for k in (1, 5, 10))
    want = 1 / (1 + rank_i2t) + 1 / (1 + rank_t2i) + rs
    r = in_batch_rewards(img, cap)
    assert np.allclose(r.numpy(), want, atol=1e-6)
    loo = want - (want.sum() - want) / 11
    assert np.allclose(advantages(r).numpy(), loo, atol=1e-5)
    assert np.allclose(advantages(r, True).numpy(), want - 0.5 * want.mean(), atol=1e-5)


def test_pg_losses_sum_heads_and_the_compat_last_head_only_image_term() -> None:
    g = torch.Generator().manual_seed(1)
    img = PolicyTrace(torch.randn(4, 3, 2, generator=g), torch.randn(4, 3, 2, generator=g), torch.ones(4, 3, 2))
    txt = PolicyTrace(torch.randn(4, 5, 2, generator=g), torch.randn(4, 5, 2, generator=g), torch.ones(4, 5, 2))
    a = torch.randn(4, generator=g)
    disc, cont = pg_losses(img, txt, a)
    want_d = sum((-(img.discrete_logp[..., h] * a[:, None])).mean() + (-(txt.discrete_logp[..., h] * a[:, None])).mean()
                 for h in range(2))
    assert float(disc) == pytest.approx(float(want_d), abs=1e-6)
    txt_c = sum((-(txt.continuous_logp[..., h] * a[:, None])).mean() for h in range(2))
    img_c = [(-(img.continuous_logp[..., h] * a[:, None])).mean() for h in range(2)]
    assert float(cont) == pytest.approx(float(txt_c + img_c[0] + img_c[1]), abs=1e-6)
    _, compat = pg_losses(img, txt, a, last_head_only_image=True)
    assert float(compat) == pytest.approx(float(txt_c + img_c[1]), abs=1e-6)


def test_decoder_labels_and_masks() -> None:
    ids = [1, 7, 8, 9, 2]
    lab, mask = decoder_labels(ids, 8)
    assert lab.tolist() == [1, 7, 8, 9, 2, 0, 0, 0] and mask.tolist() == [1, 1, 1, 1, 1, 1, 0, 0]
    lab, mask = decoder_labels(list(range(1, 70)) + [2], 61)  # cut to 60, the last set to <end>
    assert lab[59] == END and lab[58] == 59 and lab[60] == 0 and mask.sum() == 61


def test_vocabulary_rule_and_oov_words_dropped_or_aligned() -> None:
    vocab = Vocabulary.build(["A dog.", "a dog runs", "the dog", "a cat"], threshold=2)
    assert vocab.words == ["<pad>", "<start>", "<end>", "<unk>", "a", "dog"]
    assert tokenize("A t-shirt, red!") == ["a", "t", "-", "shirt", ",", "red", "!"]
    ids = vocab.encode("a red dog")
    assert ids == [1, 4, UNK, 5, 2]
    has = np.ones(len(vocab), bool)
    assert vector_slots(ids, has, 7, drop_oov=False).tolist() == [1, 4, UNK, 5, 2, 0, 0]  # aligned with lengths
    assert vector_slots(ids, has, 7, drop_oov=True).tolist() == [1, 4, 5, 2, 0, 0, 0]  # published: misaligned
    assert Vocabulary.from_json(vocab.to_json()).words == vocab.words
    capped = Vocabulary.build(["a a a b b c"], threshold=1, max_size=6)
    assert capped.words[4:] == ["a", "b"]  # the most frequent words fit the table


def test_batches_depend_on_seed_and_epoch_only() -> None:
    a, b = list(global_batches(50, 16, 3, 1)), list(global_batches(50, 16, 3, 1))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True)) and len(a) == 4
    assert not np.array_equal(a[0], next(global_batches(50, 16, 3, 2)))


@pytest.fixture(scope="module")
def splits() -> dict:
    return tiny_splits(tiny_cfg(), {"train": 12, "val": 6})


def _step(cfg, splits, model=None):
    task = MatchingTask()
    torch.manual_seed(0)
    model = model or build_model(cfg)
    opt, sched = task.build_optimizer(model, cfg)
    batch = next(iter(task.epoch_batches(cfg, splits, {}, 1, 0, 1)))
    out = task.step_module(model, cfg)(batch)
    return model, opt, sched, batch, out


@pytest.mark.parametrize("frozen", [False, True])
def test_text_decoder_frozen_or_optimised(frozen: bool, splits: dict) -> None:
    only_decoder = {"hinge": 0.0, "id": 0.0, "pg_discrete": 0.0, "pg_continuous": 0.0}
    cfg = tiny_cfg(compat={"frozen_text_decoder": frozen}, loss=only_decoder)
    model, opt, _, _, out = _step(cfg, splits)
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    before = {k: v.clone() for k, v in model.decoder.state_dict().items()}
    assert float(out["loss"]) == pytest.approx(float(out["decoder"]))
    out["loss"].backward()
    assert float(model.txt_enc.rnn.weight_ih_l0.grad.abs().sum()) > 0  # the decoder loss reaches the text encoder
    opt.step()
    changed = any(not torch.equal(before[k], v) for k, v in model.decoder.state_dict().items())
    assert changed is not frozen
    assert all((id(p) in in_opt) is not frozen for p in model.decoder.parameters())
    assert model.decoder.training or not frozen


def test_step_returns_every_named_loss_and_id_targets_are_index_plus_one(splits: dict) -> None:
    cfg = tiny_cfg()
    model, _, _, batch, out = _step(cfg, splits)
    assert {"loss", "hinge", "id", "decoder", "pg_discrete", "pg_continuous", "reward", "attn_img_mean",
            "attn_txt_std"} <= set(out)
    caps = next(global_batches(splits["train"].n_captions, cfg.train.batch_size, cfg.train.seed, 1))
    items = caps // 5  # img_id = caption index // 5; the ID target is the image index + 1
    assert np.array_equal(batch["idx"].numpy(), items + 1)
    assert torch.equal(batch["regions"], torch.from_numpy(splits["train"].regions[items]))
    emb = torch.nn.functional.normalize(model.encode_image(batch["regions"])[0], dim=1)
    assert float(out["loss"]) == pytest.approx(float(sum(out[k] for k in ("hinge", "id", "decoder", "pg_discrete",
                                                                           "pg_continuous"))), rel=1e-5)
    assert emb.shape[0] == len(items)
    ablation = tiny_cfg(model={**tiny_cfg().to_dict()["model"], "policy": {"enabled": False}})
    _, _, _, _, plain = _step(ablation, splits)
    assert "pg_discrete" not in plain and "reward" not in plain


def test_optimiser_schedule_and_clipping(splits: dict) -> None:
    cfg = tiny_cfg(optim={"lr": 2e-4, "lr_update": 15, "lr_decay": 0.5, "grad_clip": 2.0})
    model, opt, sched, _, out = _step(cfg, splits)
    lrs = []
    opt.step()  # no gradients yet: nothing moves; keeps the scheduler's order check quiet
    for _ in range(31):
        lrs.append(opt.param_groups[0]["lr"])
        sched.step()
    assert lrs[0] == lrs[14] == pytest.approx(2e-4) and lrs[15] == pytest.approx(1e-4) and lrs[30] == pytest.approx(5e-5)
    out["loss"].backward()
    for p in model.parameters():
        if p.grad is not None:
            p.grad.mul_(1e4)
    opt.param_groups[0]["lr"] = 0.0
    opt.step()
    grads = [p.grad for g in opt.param_groups for p in g["params"] if p.grad is not None]
    assert float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))) <= 2.0 + 1e-4


@pytest.mark.parametrize("compat", [False, True])
def test_image_batchnorm_at_evaluation(compat: bool, splits: dict) -> None:
    torch.manual_seed(0)
    model = build_model(tiny_cfg(compat={"bn_batch_stats_eval": compat})).eval()
    with torch.no_grad():
        model.img_enc.bn.running_mean.fill_(0.3)
    cfgs = [tiny_cfg(compat={"bn_batch_stats_eval": compat}, eval={"batch_size": b}) for b in (30, 7)]
    (a, _), (b, _) = (encode_split(model, splits["val"], c, torch.device("cpu")) for c in cfgs)
    if compat:  # published: batch statistics, so the embedding depends on the evaluation batch size
        assert not torch.allclose(a, b, atol=1e-4)
        assert float(model.img_enc.bn.running_mean.mean()) != pytest.approx(0.3)  # and updates running stats
    else:
        assert torch.allclose(a, b, atol=1e-6)
        assert float(model.img_enc.bn.running_mean.mean()) == pytest.approx(0.3)


def test_validation_split_cut_to_its_first_items() -> None:
    cfg = tiny_cfg(eval={"val_items": 3})
    splits = tiny_splits(cfg, {"train": 6, "val": 5})
    full = splits["val"].ids.copy()
    MatchingTask().prepare(cfg, splits, {}, torch.device("cpu"))
    val = splits["val"]
    assert len(val) == 3 and val.n_captions == 15 and val.regions.shape[0] == 3
    assert val.eval_batch_size == 64 and splits["train"].eval_batch_size is None  # published val loader: 64
    assert np.array_equal(val.ids, full[:15]) and val.labels.shape[0] == 15 == val.vec_ids.shape[0]
    from videxperts.training.config import load_config

    assert load_config("f30k_dcpg").eval.val_items == 1000 and tiny_cfg().eval.val_items == 0
