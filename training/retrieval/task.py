"""The retrieval task: CE, its ablations and TeachText plugged into the training harness.

One global batch holds one caption per video; every worker encodes its slice, the embeddings
are all-gathered (differentiably) and each worker computes the max-margin ranking loss over
the whole B×B batch (plus TeachText's distillation against the teachers' averaged
similarities). The best epoch is the one with the highest validation text->video Geom.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from videxperts.errors import UserError
from videxperts.training.distributed import gather_cat, tree_map
from videxperts.training.retrieval.data import GlobalBatchSampler, SplitData
from videxperts.training.task import Column, Evaluation, Selection, Task

_RANK_COLUMNS = (("R1", "R@1"), ("R5", "R@5"), ("R10", "R@10"), ("R50", "R@50"), ("MdR", "MdR"), ("MnR", "MnR"),
                 ("Geom", "Geom"))


class RetrievalStep(nn.Module):
    """The whole per-batch loss in one ``forward`` so that DDP sees every parameter use."""

    def __init__(self, model: nn.Module, margin: float, distill_weight: float = 0.0) -> None:
        super().__init__()
        self.model = model
        self.margin = margin
        self.distill_weight = distill_weight

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        from videxperts.training.retrieval.losses import distillation_loss, max_margin_ranking_loss

        video = self.model.encode_video(*batch["video"])
        text = self.model.encode_text(*batch["text"])
        video_all = tree_map(gather_cat, video)  # gathered in this order on every rank
        text_all = tree_map(gather_cat, text)
        sims = self.model.similarity(text_all, video_all).float()
        loss = max_margin_ranking_loss(sims, self.margin)
        teacher_sims = batch.get("teacher_sims")
        if teacher_sims is None:
            return {"loss": loss}
        distill = distillation_loss(sims, teacher_sims.float())
        return {"loss": loss + self.distill_weight * distill, "distill": distill.detach()}


class RetrievalTask(Task):
    name = "retrieval"
    selection = Selection("val/t2v/Geom", "max")
    report_tables = {
        "text->video": tuple(Column(f"t2v/{k}", h) for k, h in _RANK_COLUMNS),
        "video->text": tuple(Column(f"v2t/{k}", h) for k, h in _RANK_COLUMNS),
    }

    # ------------------------------------------------------------------ config and model
    def parse_config(self, raw: dict[str, Any], source: str) -> Any:
        from videxperts.training.retrieval.config import parse_config

        return parse_config(raw, source)

    def build_model(self, cfg: Any) -> nn.Module:
        from videxperts.training.retrieval.models import build_model

        return build_model(cfg)

    def describe(self, cfg: Any, model: nn.Module) -> dict[str, Any]:
        return {"variant": cfg.model.variant, "experts": {n: cfg.data.experts[n].temporal for n in cfg.expert_names},
                "shared_dim": cfg.model.shared_dim}

    def run_tags(self, cfg: Any) -> dict[str, str]:
        return {"model.variant": cfg.model.variant, "text.encoder": cfg.data.text.encoder}

    def run_params(self, cfg: Any) -> dict[str, Any]:
        return {"experts": ",".join(cfg.expert_names), "text_encoder": cfg.data.text.encoder}

    # ------------------------------------------------------------------ data
    def check_store(self, cfg: Any, store: Any, source: str, url: str) -> None:
        """Every expert and the text encoder of ``cfg`` are in ``store`` with the config's dims.

        All mismatches are listed at once (one line, ``;``-separated), each with a hint when the
        config follows the published features' names (see docs/EXPERTS.md "Published configs").
        """
        from videxperts.training.preflight import mismatch_hint

        problems: list[str] = []
        have = store.experts
        for name, spec in cfg.data.experts.items():
            if name not in have:
                problems.append(f"data.experts.{name}: no features for this expert (it has: "
                                f"{', '.join(sorted(have)) or 'none'}){mismatch_hint('expert', name)}")
            elif int(have[name]["dim"]) != int(spec.dim):
                problems.append(f"data.experts.{name}.dim is {spec.dim} but the store holds {have[name]['dim']}-dim "
                                f"features{mismatch_hint('dim', name, int(spec.dim), int(have[name]['dim']))}")
        text, encoders = cfg.data.text, store.text_encoders
        if text.encoder not in encoders:
            problems.append(f"data.text.encoder: no captions encoded with {text.encoder!r} (it has: "
                            f"{', '.join(sorted(encoders)) or 'none'}){mismatch_hint('encoder', text.encoder)}")
        elif int(encoders[text.encoder]["dim"]) != int(text.dim):
            problems.append(f"data.text.dim is {text.dim} but the store holds {encoders[text.encoder]['dim']}-dim "
                            f"{text.encoder!r} tokens")
        if problems:
            raise UserError(f"{source} does not match store {url}: {len(problems)} problem"
                            f"{'s' if len(problems) > 1 else ''}: {'; '.join(problems)}")

    def load_split(self, reader: Any, cfg: Any, video_ids: list[str], resources: Mapping[str, Any]) -> SplitData:
        from videxperts.training.retrieval.data import load_split

        evaluated = resources.get("split") != "train"  # val/test (and `evaluate`) score every caption
        data = load_split(reader, cfg, video_ids, all_captions=evaluated)
        ts = cfg.data.text
        for enc in sorted({t.encoder for t in resources.get("teachers") or []} - {ts.encoder}):
            data.add_text(enc, reader.load_text(enc, data.video_ids, max_captions=data.tokens.shape[1] if evaluated else ts.max_captions,
                                                max_tokens=ts.max_tokens))
        return data

    def check_resources(self, cfg: Any) -> None:
        """TeachText teachers given by path: readable, safe, and using only this config's experts."""
        from videxperts.training.checkpoint import is_run_id

        for ref in cfg.teachtext.teachers if cfg.teachtext is not None else []:
            if Path(ref).exists():
                self._check_teacher(cfg, ref, ref)
            elif not is_run_id(ref):
                raise UserError(f"{cfg.source}: teachtext.teachers: {ref}: neither a checkpoint file nor an MLflow "
                                "run id")

    @staticmethod
    def _check_teacher(cfg: Any, ref: str, path: str) -> None:
        from videxperts.training.checkpoint import read_checkpoint
        from videxperts.training.config import load_config

        try:
            _, ckpt = read_checkpoint(path)  # unreadable or unsafe: one line now, not in a worker later
            teacher = load_config(ckpt["config"])
        except UserError as exc:
            raise UserError(f"{cfg.source}: teachtext.teachers: {ref}: {exc}") from None
        missing = sorted(set(teacher.expert_names) - set(cfg.expert_names))
        if missing:
            raise UserError(f"{cfg.source}: teachtext.teachers: {ref} uses experts {missing} that this config "
                            "does not load")

    def driver_resources(self, cfg: Any, tracking_uri: str | None, work_dir: Path) -> dict[str, Any]:
        if cfg.teachtext is None:
            return {}
        from videxperts.training.retrieval.teachtext import resolve_teachers

        paths = resolve_teachers(list(cfg.teachtext.teachers), tracking_uri, work_dir / "teachers")
        for ref, path in zip(cfg.teachtext.teachers, paths, strict=True):
            self._check_teacher(cfg, ref, path)
        return {"teacher_paths": paths}

    def worker_resources(self, cfg: Any, resources: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
        out = dict(resources)
        if resources.get("teacher_paths"):
            from videxperts.training.retrieval.teachtext import load_teachers

            out["teachers"] = load_teachers(list(resources["teacher_paths"]), device)
        return out

    # ------------------------------------------------------------------ training
    def step_module(self, model: nn.Module, cfg: Any) -> nn.Module:
        weight = float(cfg.teachtext.weight) if cfg.teachtext is not None else 0.0
        return RetrievalStep(model, float(cfg.loss.margin), weight)

    def prepare(self, cfg: Any, splits: Mapping[str, Any], resources: dict[str, Any], device: torch.device) -> None:
        """TeachText denoising (teachers rank every training caption), then the batch sampler."""
        train, teachers, keep = splits["train"], resources.get("teachers"), None
        tt = cfg.teachtext
        if teachers and tt is not None and tt.denoise is not None:
            from videxperts.training.retrieval.teachtext import denoise_mask

            keep = denoise_mask(teachers, train, tt.denoise.threshold, device)
        resources["sampler"] = GlobalBatchSampler(train.caption_mask, cfg.train.batch_size, int(cfg.train.seed),
                                                  keep=keep)
        resources["device"] = device

    def epoch_batches(self, cfg: Any, splits: Mapping[str, Any], resources: Mapping[str, Any], epoch: int,
                      rank: int, world_size: int) -> Iterator[dict[str, Any]]:
        train, teachers, device = splits["train"], resources.get("teachers"), resources["device"]
        for vid, cap in resources["sampler"].shards(epoch, rank, world_size):
            batch: dict[str, Any] = {"video": train.video_batch(vid), "text": train.text_batch(vid, cap)}
            if teachers:
                from videxperts.training.retrieval.teachtext import teacher_similarities

                batch["teacher_sims"] = teacher_similarities(teachers, train, vid, cap, device)
            yield batch

    def example_batch(self, cfg: Any, batch_size: int, seed: int = 0) -> dict[str, Any]:
        from videxperts.training.retrieval.data import synthetic_splits

        data = synthetic_splits(cfg, {"train": batch_size}, seed=seed)["train"]
        vid = np.arange(batch_size)
        return {"video": data.video_batch(vid), "text": data.text_batch(vid, np.zeros(batch_size, np.int64))}

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, model: nn.Module, data: SplitData, device: torch.device) -> Evaluation:
        from videxperts.training.retrieval.evaluation import evaluate_split

        return evaluate_split(model, data, device)

    def plots(self, result: dict[str, Any], arrays: Mapping[str, np.ndarray], out_dir: Path, title: str) -> None:
        from videxperts.training.plots import rank_distribution

        rank_distribution(arrays.get("t2v_ranks", np.zeros(0)), out_dir / "rank_distribution.png",
                          f"{title}: test t2v")
