"""NetVLAD: the published formula, ghost clusters, and padding that never changes the result."""

import torch
import torch.nn.functional as F

from videxperts.training.retrieval.models import MaskedBatchNorm1d, NetVLAD


def _reference(vlad: NetVLAD, x: torch.Tensor) -> torch.Tensor:
    """Loop-by-loop restatement of SPEC-CE.md for ONE unpadded sample, eval-mode BatchNorm."""
    bn = vlad.assign_bn
    k = vlad.clusters
    scores = x @ vlad.assign  # [L, K+G]
    scores = (scores - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
    a = torch.softmax(scores, dim=1)[:, :k]  # drop ghosts after the softmax
    cols = []
    for j in range(k):
        r = sum(a[t, j] * (x[t] - vlad.centres[:, j]) for t in range(x.shape[0]))
        cols.append(r / r.norm().clamp_min(1e-12))
    v = torch.stack(cols, dim=1).reshape(-1)  # [D, K] flattened D-major
    return v / v.norm()


def _randomise_bn(vlad: NetVLAD) -> None:
    with torch.no_grad():
        vlad.assign_bn.running_mean.normal_()
        vlad.assign_bn.running_var.uniform_(0.5, 2.0)
        vlad.assign_bn.weight.normal_()
        vlad.assign_bn.bias.normal_()


def test_matches_loop_reference_with_ghosts():
    torch.manual_seed(0)
    vlad = NetVLAD(dim=5, clusters=3, ghosts=2).eval()
    _randomise_bn(vlad)
    x = torch.randn(2, 4, 5)
    out = vlad(x)
    assert out.shape == (2, 15)
    for i in range(2):
        torch.testing.assert_close(out[i], _reference(vlad, x[i]), rtol=1e-5, atol=1e-6)


def test_output_is_unit_norm_and_intra_normalised():
    torch.manual_seed(1)
    vlad = NetVLAD(dim=6, clusters=4).train()
    out = vlad(torch.randn(3, 7, 6))
    torch.testing.assert_close(out.norm(dim=1), torch.ones(3))
    per_cluster = out.view(3, 6, 4).norm(dim=1)  # every cluster block has equal norm 1/sqrt(K)
    torch.testing.assert_close(per_cluster, torch.full((3, 4), 0.5))


def test_ghost_clusters_change_assignment_but_not_output_size():
    torch.manual_seed(2)
    x = torch.randn(2, 5, 4)
    plain = NetVLAD(4, 3, 0).eval()
    ghost = NetVLAD(4, 3, 1).eval()
    with torch.no_grad():
        ghost.assign[:, :3] = plain.assign
        ghost.centres.copy_(plain.centres)
        ghost.assign[:, 3] = 5.0  # a ghost that absorbs weight
    assert ghost(x).shape == plain(x).shape == (2, 12)
    assert not torch.allclose(ghost(x), plain(x))


def _padded(x, mask, extra, fill):
    b, _, d = x.shape
    pad = torch.full((b, extra, d), fill) if fill is not None else torch.randn(b, extra, d) * 100
    return torch.cat([x, pad], 1), torch.cat([mask, torch.zeros(b, extra, dtype=torch.bool)], 1)


def test_padding_does_not_change_output_train_and_eval():
    torch.manual_seed(3)
    x = torch.randn(4, 6, 8)
    mask = torch.tensor([[1] * 6, [1] * 3 + [0] * 3, [1] * 1 + [0] * 5, [0] * 6], dtype=torch.bool)
    for mode in ("train", "eval"):
        for fill in (None, 0.0, float("nan")):
            a = NetVLAD(8, 3, 1)
            b = NetVLAD(8, 3, 1)
            b.load_state_dict(a.state_dict())
            a.train(mode == "train")
            b.train(mode == "train")
            xp, mp = _padded(x, mask, 5, fill)
            xp[~mp] = torch.randn_like(xp[~mp]) * 50 if fill is None else fill  # old padding too
            out_a = a(x, mask)
            out_b = b(xp, mp)
            assert torch.isfinite(out_b).all()
            torch.testing.assert_close(out_a, out_b, rtol=1e-5, atol=1e-6)
            # BatchNorm running statistics moved identically (padding never entered them)
            torch.testing.assert_close(a.assign_bn.running_mean, b.assign_bn.running_mean)
            torch.testing.assert_close(a.assign_bn.running_var, b.assign_bn.running_var)
    # a sample with no valid token aggregates to the zero vector
    assert torch.count_nonzero(NetVLAD(8, 3).train()(x, mask)[3]) == 0


def test_padding_changes_output_without_mask():
    """Guard that the invariance test can fail: unmasked padding does move the result."""
    torch.manual_seed(4)
    vlad = NetVLAD(8, 3).eval()
    x = torch.randn(2, 4, 8)
    xp = torch.cat([x, torch.zeros(2, 3, 8)], 1)
    assert not torch.allclose(vlad(x), vlad(xp))


def test_gradients_flow_to_all_parameters():
    torch.manual_seed(5)
    vlad = NetVLAD(6, 2, 1).train()
    mask = torch.rand(3, 5) > 0.3
    mask[:, 0] = True
    vlad(torch.randn(3, 5, 6), mask).pow(2).sum().backward()
    for name, p in vlad.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_masked_batchnorm_uses_valid_rows_only():
    torch.manual_seed(6)
    bn = MaskedBatchNorm1d(3).train()
    x = torch.randn(6, 3)
    mask = torch.tensor([1, 1, 0, 1, 0, 1], dtype=torch.bool)
    out = bn(x, mask)
    valid = x[mask]
    expected = (valid - valid.mean(0)) / torch.sqrt(valid.var(0, unbiased=False) + bn.eps)
    torch.testing.assert_close(out[mask], expected)
    assert torch.count_nonzero(out[~mask]) == 0
    # a single valid row in training falls back to running statistics instead of failing
    one = torch.tensor([0, 0, 1, 0, 0, 0], dtype=torch.bool)
    fresh = MaskedBatchNorm1d(3).train()
    torch.testing.assert_close(fresh(x, one)[2], F.batch_norm(x[2:3], torch.zeros(3), torch.ones(3))[0])
