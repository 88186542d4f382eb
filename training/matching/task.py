"""The matching task (VSRN, DCPG) in the training harness.

One global batch is ``batch_size`` caption-image pairs; each worker encodes its slice, the
embeddings, policy traces and targets are all-gathered (differentiably) and every worker
computes the whole batch's losses, so the in-batch rewards are those of the global batch and
one worker and N workers compute the same numbers. The policy's random draws (Gumbel, bin,
Normal) are made for the global batch from a seed fixed by (seed, epoch, batch) and sliced, so
they agree too; what still differs between 1 and N workers is dropout (decoder, captioner),
drawn per worker. The best epoch is the one with the highest validation R1+R5+R1i+R5i.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from videxperts.errors import UserError
from videxperts.training.distributed import gather_cat, tree_map
from videxperts.training.matching.config import MatchingConfig
from videxperts.training.matching.data import MatchingData, global_batches
from videxperts.training.matching.layers import PolicyNoise, l2norm
from videxperts.training.matching.losses import (
    advantages,
    caption_loss,
    decoder_loss,
    hinge_loss,
    in_batch_rewards,
    pg_losses,
)
from videxperts.training.task import Column, Evaluation, Selection, Task

_REPORT = (Column("i2t_r1", "i2t R@1"), Column("i2t_r5", "R@5"), Column("i2t_r10", "R@10"),
           Column("t2i_r1", "t2i R@1"), Column("t2i_r5", "R@5"), Column("t2i_r10", "R@10"), Column("rsum", "rsum"))


class ClippedAdam(torch.optim.Adam):
    """Adam whose step first clips the gradient norm of its parameters (``clip_grad_norm``, 2.0 published)."""

    def __init__(self, params: Any, lr: float, max_norm: float) -> None:
        super().__init__(params, lr=lr)
        self.max_norm = max_norm

    def step(self, closure: Any = None) -> Any:  # type: ignore[override]
        params = [p for g in self.param_groups for p in g["params"] if p.grad is not None]
        if self.max_norm > 0 and params:
            torch.nn.utils.clip_grad_norm_(params, self.max_norm)
        return super().step(closure)


def _noise_seed(seed: int, epoch: int, batch: int) -> int:
    return int(np.random.default_rng([seed, epoch, batch, 7]).integers(0, 2**62))


class MatchingStep(nn.Module):
    """The whole per-batch loss in one ``forward`` (DDP sees every parameter use)."""

    def __init__(self, model: nn.Module, cfg: MatchingConfig) -> None:
        super().__init__()
        self.model, self.cfg = model, cfg

    def _noise(self, batch: dict[str, Any], steps: int) -> tuple[PolicyNoise | None, PolicyNoise | None]:
        pol = self.cfg.model.policy
        if not (self.cfg.model.kind == "dcpg" and pol.enabled and self.model.training):
            return None, None
        dev = batch["regions"].device
        gen = torch.Generator(device=dev)
        gen.manual_seed(int(batch["noise_seed"][0]))
        size, rows = int(batch["global_size"][0]), batch["rows"]
        img = PolicyNoise.draw((size, steps, pol.heads, pol.bins), gen, dev).rows(rows)
        txt = PolicyNoise.draw((size, self.cfg.text.max_words, pol.heads, pol.bins), gen, dev).rows(rows)
        return img, txt

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        cfg, model, w = self.cfg, self.model, self.cfg.loss
        noise_img, noise_txt = self._noise(batch, batch["regions"].shape[1])
        img, feats, tr_img = model.encode_image(batch["regions"], noise_img)
        cap, tr_txt = model.encode_text(batch, noise_txt)
        img_n, cap_n = l2norm(gather_cat(img)), l2norm(gather_cat(cap))
        labels = gather_cat(batch["labels"], differentiable=False)
        mask = gather_cat(batch["label_mask"], differentiable=False)
        hinge = hinge_loss(img_n, cap_n, w.margin, w.max_violation, w.intra_modal and cfg.model.kind == "dcpg")
        out: dict[str, torch.Tensor] = {"hinge": hinge}
        if cfg.model.kind == "vsrn":
            logprobs = model.captioner(gather_cat(feats), labels, cfg.model.captioner.steps)
            out["caption"] = caption_loss(logprobs, labels, mask)
            total = w.hinge * hinge + w.decoder * out["caption"]
            return {"loss": total, **{k: v.detach() for k, v in out.items()}}
        idx = gather_cat(batch["idx"], differentiable=False)
        out["id"] = F.cross_entropy(model.id_head(img_n), idx) + F.cross_entropy(model.id_head(cap_n), idx)
        words = gather_cat(batch["vectors"][:, : cfg.model.decoder.label_len], differentiable=False)
        out["decoder"] = decoder_loss(model.decoder(words, cap_n), labels, mask)
        total = w.hinge * hinge + w.id * out["id"] + w.decoder * out["decoder"]
        if tr_img is not None and tr_txt is not None:
            tr_img, tr_txt = tree_map(gather_cat, tr_img), tree_map(gather_cat, tr_txt)
            reward = in_batch_rewards(img_n.detach(), cap_n.detach())
            adv = advantages(reward, cfg.compat.halved_baseline)
            out["pg_discrete"], out["pg_continuous"] = pg_losses(tr_img, tr_txt, adv, cfg.compat.last_head_only_image)
            total = total + w.pg_discrete * out["pg_discrete"] + w.pg_continuous * out["pg_continuous"]
            out["reward"] = reward.mean()
            for name, tr in (("img", tr_img), ("txt", tr_txt)):
                out[f"attn_{name}_mean"], out[f"attn_{name}_std"] = tr.weights.mean(), tr.weights.std()
        return {"loss": total, **{k: v.detach() for k, v in out.items()}}


@torch.no_grad()
def encode_split(model: nn.Module, data: MatchingData, cfg: MatchingConfig, device: torch.device
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """l2-normalised image embeddings [N, E] and caption embeddings [N*C, E] (model in eval mode).

    With ``compat.bn_batch_stats_eval`` images go through in caption order (each repeated C
    times, ``eval.batch_size`` rows per batch) as the published loader does, and image i keeps
    the embedding of its first copy: batch statistics then see the published batches.
    """
    bs, c = data.eval_batch_size or cfg.eval.batch_size, data.captions_per_item
    batch_stats = cfg.compat.bn_batch_stats_eval and model.img_enc.bn is not None
    order = np.repeat(np.arange(len(data)), c) if batch_stats else np.arange(len(data))
    imgs = []
    for start in range(0, len(order), bs):
        regions = torch.from_numpy(data.regions[order[start : start + bs]]).to(device)
        imgs.append(model.encode_image(regions)[0].float())
    img = torch.cat(imgs)[:: c if batch_stats else 1]
    caps = []
    for start in range(0, data.n_captions, bs):
        batch = data.batch(np.arange(start, min(start + bs, data.n_captions)), with_targets=False)
        batch = {k: v.to(device) for k, v in batch.items()}
        caps.append(model.encode_text(batch)[0].float())
    return l2norm(img).cpu(), l2norm(torch.cat(caps)).cpu()


def split_metrics(img: torch.Tensor, cap: torch.Tensor, cfg: MatchingConfig, protocol: str | None = None
                  ) -> dict[str, float]:
    """The VSE++ metrics of one split under ``protocol`` (the config's by default); a split whose
    size does not divide into folds (validation) is scored whole."""
    from videxperts.training.matching.metrics import EmbeddingSims, evaluate_protocol

    protocol = protocol or cfg.eval.protocol
    if protocol == "coco_1k" and img.shape[0] % cfg.eval.fold_size:
        protocol = "coco_5k"
    return evaluate_protocol(EmbeddingSims(img, cap), protocol, cfg.data.captions_per_item, cfg.eval.fold_size)


class MatchingTask(Task):
    name = "matching"
    selection = Selection("val/rsum_select", "max")
    report_tables = {"image-text matching": _REPORT}

    # ------------------------------------------------------------------ config and model
    def parse_config(self, raw: dict[str, Any], source: str) -> MatchingConfig:
        from videxperts.training.matching.config import parse_config

        return parse_config(raw, source)

    def build_model(self, cfg: MatchingConfig) -> nn.Module:
        from videxperts.training.matching.models import build_model

        return build_model(cfg)

    def describe(self, cfg: MatchingConfig, model: nn.Module) -> dict[str, Any]:
        return {"kind": cfg.model.kind, "policy": cfg.model.kind == "dcpg" and cfg.model.policy.enabled,
                "vocab_size": cfg.model.vocab_size, "id_classes": cfg.id_classes if cfg.model.kind == "dcpg" else None,
                "embed_size": cfg.model.embed_size}

    def run_tags(self, cfg: MatchingConfig) -> dict[str, str]:
        return {"model.kind": cfg.model.kind, "data.expert": cfg.data.expert}

    # ------------------------------------------------------------------ data
    def check_store(self, cfg: MatchingConfig, store: Any, source: str, url: str) -> None:
        have, name = store.experts, cfg.data.expert
        if name not in have:
            raise UserError(f"{source}: data.expert: store {url} has no features for {name!r} "
                            f"(it has: {', '.join(sorted(have)) or 'none'})")
        if int(have[name]["dim"]) != cfg.model.img_dim:
            raise UserError(f"{source}: model.img_dim is {cfg.model.img_dim} but store {url} holds "
                            f"{have[name]['dim']}-dim features for {name!r}")

    def check_resources(self, cfg: MatchingConfig) -> None:
        v = cfg.text.vectors
        if cfg.model.kind == "dcpg" and v != "seeded" and not Path(v).is_file():
            raise UserError(f"{cfg.source}: text.vectors: {v}: no such file (or use 'seeded')")

    def data_resources(self, cfg: MatchingConfig, data_dir: str | Path, work_dir: Path) -> dict[str, Any]:
        """Caption strings of every item, the vocabulary rebuilt from train+val captions (written
        to ``WORK/vocab/NAME-DIGEST.json``) and where large splits' region rows are cached."""
        from videxperts.training.matching.vocab import Vocabulary
        from videxperts.training.splits import read_splits

        captions = read_captions(data_dir)
        splits = read_splits(data_dir)
        fit_items = [*splits.get("train", []), *splits.get("val", [])]
        vocab = Vocabulary.build((t for item in fit_items for t in captions.get(item, [])), cfg.text.threshold,
                                 cfg.model.vocab_size)
        out = Path(work_dir) / "vocab" / f"{cfg.name}-{vocab.digest}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(vocab.to_json())
        return {"captions": captions, "vocab_words": vocab.words, "vocab_path": str(out),
                "cache_dir": str(Path(work_dir).resolve() / "cache" / "regions")}

    def worker_resources(self, cfg: MatchingConfig, resources: Mapping[str, Any], device: torch.device
                         ) -> dict[str, Any]:
        out = dict(resources)
        if "vocab_words" in resources:
            from videxperts.training.matching.vocab import Vocabulary, word_vectors

            vocab = Vocabulary(list(resources["vocab_words"]))
            t = cfg.text
            out["vocab"] = vocab
            out["table"], out["has_vector"] = word_vectors(vocab, cfg.model.word_dim, t.vectors, t.vectors_seed,
                                                           t.vectors_std)
        return out

    def load_split(self, reader: Any, cfg: MatchingConfig, video_ids: list[str],
                   resources: Mapping[str, Any]) -> MatchingData:
        from videxperts.training.matching.data import build_split
        from videxperts.training.matching.regions import load_regions

        if "vocab" not in resources:
            raise UserError("matching needs the dataset's captions: pass --data DIR (with captions.parquet)")
        ids, regions = load_regions(reader, cfg, list(video_ids), resources.get("cache_dir"))
        return build_split(cfg, ids, regions, resources["captions"], resources["vocab"], resources["table"],
                           resources["has_vector"])

    # ------------------------------------------------------------------ training
    def build_optimizer(self, model: nn.Module, cfg: MatchingConfig) -> tuple[torch.optim.Optimizer, Any]:
        o = cfg.optim
        optimizer = ClippedAdam([p for p in model.parameters() if p.requires_grad], o.lr, o.grad_clip)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: o.lr_decay ** (e // o.lr_update))
        return optimizer, scheduler

    def step_module(self, model: nn.Module, cfg: MatchingConfig) -> nn.Module:
        return MatchingStep(model, cfg)

    def prepare(self, cfg: MatchingConfig, splits: Mapping[str, Any], resources: dict[str, Any],
                device: torch.device) -> None:
        val = splits.get("val")
        if val is not None:  # in place: the runner holds this object
            val.eval_batch_size = cfg.eval.val_batch_size
            if cfg.eval.val_items and len(val) > cfg.eval.val_items:
                val.truncate(cfg.eval.val_items)
        n = len(splits["train"])
        if cfg.model.kind == "dcpg" and n + 1 > cfg.id_classes:
            raise UserError(f"{cfg.source}: model.id.classes is {cfg.id_classes} but the training split has {n} "
                            f"items (ID targets are item index + 1: need at least {n + 1})")

    def epoch_batches(self, cfg: MatchingConfig, splits: Mapping[str, Any], resources: Mapping[str, Any],
                      epoch: int, rank: int, world_size: int) -> Iterator[dict[str, torch.Tensor]]:
        data: MatchingData = splits["train"]
        seed = int(cfg.train.seed)
        for b, rows in enumerate(global_batches(data.n_captions, cfg.train.batch_size, seed, epoch)):
            if len(rows) < world_size:
                continue
            mine = np.array_split(np.arange(len(rows)), world_size)[rank]
            batch = data.batch(rows[mine])
            batch["rows"] = torch.from_numpy(mine.astype(np.int64))
            batch["global_size"] = torch.tensor([len(rows)])
            batch["noise_seed"] = torch.tensor([_noise_seed(seed, epoch, b)])
            yield batch

    def example_batch(self, cfg: MatchingConfig, batch_size: int, seed: int = 0) -> dict[str, torch.Tensor]:
        """Random regions and captions of 6-14 words with the config's shapes (one caption per item)."""
        g = torch.Generator().manual_seed(seed)
        m, label_len = cfg.model, cfg.model.decoder.label_len
        words = min(14, cfg.text.max_words, label_len - 1)
        lengths = torch.randint(min(6, words), words + 1, (batch_size,), generator=g)
        ids = torch.randint(4, m.vocab_size, (batch_size, words), generator=g)
        ids[torch.arange(words)[None, :] >= lengths[:, None]] = 0
        vectors = torch.randn(batch_size, cfg.text.max_words, m.word_dim, generator=g) * cfg.text.vectors_std
        vectors[:, words:] = 0.0
        labels = torch.zeros(batch_size, label_len, dtype=torch.int64)
        labels[:, :words] = ids
        mask = (torch.arange(label_len)[None, :] <= lengths[:, None]).float()
        return {"regions": torch.randn(batch_size, cfg.data.regions, m.img_dim, generator=g).relu(),
                "ids": ids, "lengths": lengths, "vectors": vectors, "labels": labels, "label_mask": mask,
                "idx": torch.randint(1, cfg.id_classes, (batch_size,), generator=g),
                "rows": torch.arange(batch_size), "global_size": torch.tensor([batch_size]),
                "noise_seed": torch.tensor([seed])}

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, model: nn.Module, data: MatchingData, device: torch.device) -> Evaluation:
        cfg: MatchingConfig = model.cfg  # type: ignore[assignment]
        img, cap = encode_split(model, data, cfg, device)
        metrics = split_metrics(img, cap, cfg)
        return Evaluation(metrics, {}, {"images": len(data), "captions": data.n_captions})


def read_captions(data_dir: str | Path) -> dict[str, list[str]]:
    """Caption strings per item in caption_idx order, from ``DATA/captions.parquet``."""
    import pyarrow.parquet as pq

    path = Path(data_dir)
    file = path / "captions.parquet" if path.is_dir() else path
    if not file.is_file():
        raise UserError(f"no captions.parquet in {data_dir} (matching needs the caption strings)")
    t = pq.read_table(file, columns=["video_id", "caption_idx", "caption"]).to_pydict()
    rows = sorted(zip(t["video_id"], t["caption_idx"], t["caption"], strict=True), key=lambda r: (str(r[0]), r[1]))
    out: dict[str, list[str]] = {}
    for vid, _, text in rows:
        out.setdefault(str(vid), []).append(str(text))
    return out
