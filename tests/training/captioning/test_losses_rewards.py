"""Label smoothing and biased KL targets, per-prefix METEOR rewards (fast == plain loop), worker and
manager rewards, the phase schedule and the trainable set of each phase (spec section 7)."""

from __future__ import annotations

import pytest
import torch

from videxperts.training.captioning import rewards as R
from videxperts.training.captioning.losses import biased_target, kl_sum, smoothed_target
from videxperts.training.captioning.schedule import explores, phases


def test_label_smoothing_target_toy_vocab():
    tgt = torch.tensor([[2, 5, 1]])
    dist = smoothed_target(tgt, 6, 0.7, pad=1)
    row = dist[0, 0].tolist()
    assert row[2] == pytest.approx(0.3) and row[1] == 0
    assert [row[i] for i in (0, 3, 4, 5)] == pytest.approx([0.175] * 4)
    assert dist[0, 2].sum() == 0  # pad row
    assert dist[0, :2].sum(-1).tolist() == pytest.approx([1.0, 1.0])
    logp = torch.log_softmax(torch.randn(1, 3, 6), -1)
    expected = sum(p * (torch.log(torch.tensor(p)) - logp[0, t, k]) for t in range(2) for k, p in
                   enumerate(dist[0, t].tolist()) if p > 0)
    assert kl_sum(logp, dist).item() / 2 == pytest.approx(expected.item() / 2, rel=1e-5)


def test_biased_kl_target():
    tgt = torch.tensor([[2, 5, 1]])
    sampled = torch.tensor([[4, 5, 3]])
    a = torch.tensor([[0.4, 0.9, 0.5]])
    dist = biased_target(tgt, sampled, a, 6, 0.7, pad=1)
    assert dist[0, 0, 2].item() == pytest.approx(0.3 * 0.6)
    assert dist[0, 0, 4].item() == pytest.approx(0.175 + 0.3 * 0.4)
    assert dist[0, 1, 5].item() == pytest.approx(0.3)  # sampled == ground truth: exactly 0.3
    assert dist[0, 0].sum().item() == pytest.approx(1.0) and dist[0, 1].sum().item() == pytest.approx(1.0)
    assert dist[0, 2].sum() == 0
    assert dist[0, 0, 1] == 0
    # the pad quirk: mass added after the pad column is zeroed
    assert biased_target(tgt, torch.tensor([[1, 1, 1]]), a, 6, 0.7, 1)[0, 0, 1].item() == pytest.approx(0.12)


def test_worker_reward_telescopes_and_the_eos_switch():
    m = [[0.1, 0.25, 0.2, 0.4]]  # M_0..M_{n-2}, n = 5
    r = R.worker_rewards(m, 7, eos_negative=True)[0]
    assert r[:4].sum().item() == pytest.approx(0.4)  # Σ_{t<n-1} r_t = M_{n-2}
    assert r[4].item() == pytest.approx(-0.4)  # r_{n-1} = -M_{n-2} (the original)
    assert r[5:].abs().sum() == 0
    assert r[:4].tolist() == pytest.approx([0.1, 0.15, -0.05, 0.2])
    assert R.worker_rewards(m, 7, eos_negative=False)[0, 4].item() == 0.0


def test_manager_reward_worked_example():
    r = torch.tensor([[0.1, 0.0, 0.3, 0.05, 0.2]])
    seg = torch.tensor([[1, 0, 1, 0, 0]])
    out = R.manager_rewards(r, seg, 0.7)[0]
    assert out.tolist() == pytest.approx([0.31, 0.0, 0.30, 0.0, 0.0])
    out = R.manager_rewards(r, torch.tensor([[1, 0, 1, 0, 1]]), 0.5)[0]
    assert out[0].item() == pytest.approx(0.1 + 0.5 * 0.3 + 0.25 * 0.2)


def test_fast_prefix_meteor_equals_the_plain_loop():
    refs = ["a red circle moves then stops", "the man is playing a guitar on stage", "dogs running"]
    words = [["a", "red", "circles", "move", "</s>", "stops", "a"], ["the", "men", "plays", "guitar", "stage"],
             ["dog", "run", "running", "<blank>"]]
    lengths = [7, 6, 3]
    plain = [R.plain_prefix_meteor(r, w, n) for r, w, n in zip(refs, words, lengths, strict=True)]
    assert [len(p) for p in plain] == [6, 5, 2]
    fast = R.PrefixMeteor()(refs, words, lengths)
    assert fast == plain  # identical floats
    pooled = R.PrefixMeteor(processes=2)
    try:
        assert pooled(refs, words, lengths) == plain
    finally:
        pooled.close()


def test_reward_meteor_matches_exact_and_stems_offline():
    _, name = R.wordnet_source()
    exact = R.meteor(["a", "dog", "runs"], ["a", "dog", "runs"])
    stem = R.meteor(["a", "dog", "runs"], ["a", "dog", "running"])
    none = R.meteor(["a", "dog", "runs"], ["the", "cat", "sleeps"])
    assert exact > 0.9 and none == 0.0
    assert stem == pytest.approx(exact)  # runs / running share the Porter stem 'run'
    if name != "wordnet":  # without WordNet data, synonyms do not match
        assert R.meteor(["a", "dog", "runs"], ["a", "hound", "runs"]) < exact


def test_hypothesis_words_with_and_without_specials():
    itos = ["<unk>", "<blank>", "<s>", "</s>", "a", "dog"]
    assert R.hypothesis_words(itos, [4, 5, 3, 1], keep_specials=True) == ["a", "dog", "</s>", "<blank>"]
    assert R.hypothesis_words(itos, [4, 5, 3, 1], keep_specials=False) == ["a", "dog"]


def test_phase_sequences():
    assert phases(4, 0, original=True) == ["worker", "manager", "worker", "manager"]
    assert phases(5, 1, original=True) == ["warm", "warm", "worker", "manager", "worker"]
    assert phases(5, 2, original=True) == ["warm", "warm", "warm", "manager", "worker"]
    assert phases(4, 0) == ["worker", "manager", "worker", "manager"]
    assert phases(4, 1) == ["warm", "worker", "manager", "worker"]
    assert phases(5, 2) == ["warm", "warm", "worker", "manager", "worker"]
    assert phases(3, 1, worker_first=False) == ["warm", "manager", "worker"]


def test_exploration_flag():
    assert explores(3, "manager") and not explores(2, "worker")
    assert [explores(e, "warm", stale_flag=True) for e in range(4)] == [True, True, False, False]
    assert not explores(0, "warm")
