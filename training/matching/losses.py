"""The matching losses: hinge with hardest negatives, in-batch rewards, the two policy-gradient
terms (SPEC-DCPG §2). Inputs are the *global* batch (gathered across workers), so every worker
computes the same numbers one worker would."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from videxperts.training.matching.layers import PolicyTrace


def hinge_loss(img: torch.Tensor, cap: torch.Tensor, margin: float, max_violation: bool = True,
               intra_modal: bool = False) -> torch.Tensor:
    """VSE++ contrastive loss on l2-normalised embeddings, summed over the batch.

    i2t: for image i, [margin + S_ij - S_ii]+ over captions j != i; t2i: for caption j, over
    images. ``max_violation``: only the hardest negative counts. ``intra_modal`` (DCPG) adds
    [margin + im_i . im_j - 1]+ and the caption analogue (hardest over dim 0).
    """
    scores = img @ cap.t()
    diag = scores.diag()
    eye = torch.eye(scores.shape[0], dtype=torch.bool, device=scores.device)
    cost_s = (margin + scores - diag[:, None]).clamp(min=0).masked_fill(eye, 0)
    cost_im = (margin + scores - diag[None, :]).clamp(min=0).masked_fill(eye, 0)
    terms = [cost_s.max(1)[0], cost_im.max(0)[0]] if max_violation else [cost_s, cost_im]
    if intra_modal:
        for x in (img, cap):
            cost = (margin + x @ x.t() - 1).clamp(min=0).masked_fill(eye, 0)
            terms.append(cost.max(0)[0] if max_violation else cost)
    return sum(t.sum() for t in terms)


@torch.no_grad()
def in_batch_rewards(img: torch.Tensor, cap: torch.Tensor) -> torch.Tensor:
    """r_j = RR_i2t(j) + RR_t2i(j) + (R1+R5+R10)_i2t/100 + (R1+R5+R10)_t2i/100 for pair j.

    Caption j is image j's only relevant item; the rank counts strictly better items (the
    original's Euclidean ranking on unit vectors orders like the dot product).
    """
    s = img.float() @ cap.float().t()
    d = s.diag()
    rank_i2t = (s > d[:, None]).sum(1).float()
    rank_t2i = (s > d[None, :]).sum(0).float()

    def rsum(rank: torch.Tensor) -> torch.Tensor:
        return sum((rank < k).float().mean() for k in (1, 5, 10))  # (R1+R5+R10)/100

    return 1.0 / (1.0 + rank_i2t) + 1.0 / (1.0 + rank_t2i) + rsum(rank_i2t) + rsum(rank_t2i)


def advantages(rewards: torch.Tensor, halved_baseline: bool = False) -> torch.Tensor:
    """r_j minus the leave-one-out mean of the others; ``halved_baseline``: r_j - 0.5 * mean(r) (published)."""
    if halved_baseline:
        return rewards - 0.5 * rewards.mean()
    n = rewards.shape[0]
    if n < 2:
        return torch.zeros_like(rewards)
    return rewards - (rewards.sum() - rewards) / (n - 1)


def pg_losses(img: PolicyTrace, txt: PolicyTrace, adv: torch.Tensor, last_head_only_image: bool = False
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """(discrete, continuous) REINFORCE terms: per head the mean over (B, T) of -log p * A, summed
    over heads and both branches. ``last_head_only_image``: the image continuous term uses the
    last head only (the published `=` for `+=`)."""
    a = adv.detach()[:, None]
    heads = img.discrete_logp.shape[-1]
    discrete = sum((-(img.discrete_logp[..., h] * a)).mean() + (-(txt.discrete_logp[..., h] * a)).mean()
                   for h in range(heads))
    cont_txt = sum((-(txt.continuous_logp[..., h] * a)).mean() for h in range(heads))
    img_heads = [heads - 1] if last_head_only_image else range(heads)
    cont_img = sum((-(img.continuous_logp[..., h] * a)).mean() for h in img_heads)
    return discrete, cont_txt + cont_img


def decoder_loss(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of positions 0..L-2 against labels[:, 1:] where mask[:, 1:] is set (mean)."""
    logp = F.log_softmax(logits[:, :-1].float(), dim=-1)
    nll = -logp.gather(-1, labels[:, 1:, None]).squeeze(-1)
    m = mask[:, 1:].float()
    return (nll * m).sum() / m.sum().clamp(min=1)


def caption_loss(logprobs: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """VSRN: masked NLL of labels[:, 1:steps+1], summed over tokens, divided by the batch size."""
    steps = logprobs.shape[1]
    nll = -logprobs.float().gather(-1, labels[:, 1 : steps + 1, None]).squeeze(-1)
    return (nll * mask[:, 1 : steps + 1].float()).sum() / logprobs.shape[0]
