"""Captioning a split and scoring it (validation during training, test at the end, ``caption``).

Two scorers: ``anet`` is the ActivityNet dense-captioning protocol (dense_eval.py: per-video
averaging, PTB tokenisation, BLEU, Java METEOR 1.5, ROUGE-L, CIDEr, pairs at tIoU ≥ 0.5);
``nltk`` is a quick in-process approximation for tests and smoke runs (same per-video pairing
and averaging; NLTK's BLEU-3/4 and METEOR, no ROUGE-L/CIDEr). Metrics are reported ×100.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from videxperts.training.captioning.decode import beam_search, captioner, greedy, to_sentence

SCORERS = ("anet", "nltk")


def caption_split(model: nn.Module, data: Any, device: torch.device, batch_size: int, max_len: int,
                  beam: int = 1) -> list[str]:
    """One sentence per segment of ``data`` (greedy with a cache, or beam search)."""
    dec = captioner(model)
    out: list[str] = []
    for lo in range(0, len(data), batch_size):
        idx = list(range(lo, min(lo + batch_size, len(data))))
        b = data.batch(idx)
        mem = dec.encode(b["v"].to(device), b["a"].to(device), b["v_rows"].to(device), b["a_rows"].to(device))
        toks = (greedy(dec, mem, len(idx), max_len) if beam <= 1 else beam_search(dec, mem, len(idx), beam, max_len))
        out += [to_sentence(t.tolist(), data.itos) for t in toks.cpu()]
    return out


def submission(data: Any, sentences: list[str]) -> dict[str, Any]:
    """The ActivityNet submission JSON of a split's captions."""
    results: dict[str, list] = {}
    for i, s in enumerate(sentences):
        results.setdefault(data.video_ids[i], []).append(
            {"sentence": s, "timestamp": [float(data.starts[i]), float(data.ends[i])]})
    return {"version": "VERSION 1.0", "external_data": {"used": False, "details": ""}, "results": results}


def references(data: Any) -> dict[str, Any]:
    """The split's ground truth in the ActivityNet JSON layout."""
    out: dict[str, dict] = {}
    for i, c in enumerate(data.captions):
        e = out.setdefault(data.video_ids[i], {"duration": float(data.durations[i]), "timestamps": [],
                                               "sentences": []})
        e["timestamps"].append([float(data.starts[i]), float(data.ends[i])])
        e["sentences"].append(c)
    return out


def score(sub: Mapping[str, Any], refs: Mapping[str, Any], scorer: str = "anet") -> dict[str, float]:
    """Bleu_1..Bleu_4, METEOR, ROUGE_L, CIDEr (×100; what the scorer offers) at tIoU 0.5 (MLflow-safe names)."""
    if scorer == "anet":
        evaluate_dense_captions = anet_evaluator()

        raw = evaluate_dense_captions(sub, refs, tious=(0.5,))
        names = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr")
        return {k: 100.0 * float(raw[k]) for k in names if raw.get(k) is not None}
    return _nltk_scores(sub, refs)


def anet_evaluator():  # noqa: ANN201 - the evaluator function
    """The ActivityNet dense-captioning evaluator, or one line saying why it is unavailable."""
    try:
        from videxperts.training.captioning.dense_eval import evaluate_dense_captions
    except ImportError as exc:
        from videxperts.errors import UserError

        raise UserError(f"train.val_scorer: 'anet' needs the ActivityNet evaluator ({exc}); install pycocoevalcap "
                        "or set train.val_scorer: nltk") from None
    return evaluate_dense_captions


def _tiou(a: tuple[float, float], b: tuple[float, float]) -> float:
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 else float(a == b)


def _nltk_scores(sub: Mapping[str, Any], refs: Mapping[str, Any], thr: float = 0.5) -> dict[str, float]:
    from nltk.translate.bleu_score import corpus_bleu

    from videxperts.training.captioning.rewards import meteor

    per: dict[str, list[float]] = {"Bleu_3": [], "Bleu_4": [], "METEOR": []}
    for vid, ref in refs.items():
        pairs = [(p["sentence"].lower().split(), r.lower().split())
                 for p in sub["results"].get(vid, [])
                 for ts, r in zip(ref["timestamps"], ref["sentences"], strict=True)
                 if _tiou(tuple(p["timestamp"]), tuple(ts)) >= thr]
        if not pairs:
            for k in per:
                per[k].append(0.0)
            continue
        hyps, rfs = [h for h, _ in pairs], [[r] for _, r in pairs]
        per["Bleu_3"].append(corpus_bleu(rfs, hyps, weights=(1 / 3,) * 3))
        per["Bleu_4"].append(corpus_bleu(rfs, hyps, weights=(0.25,) * 4))
        per["METEOR"].append(float(np.mean([meteor(r[0], h) for h, r in zip(hyps, rfs, strict=True)])))
    return {k: 100.0 * float(np.mean(v)) if v else 0.0 for k, v in per.items()}
