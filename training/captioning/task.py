"""The captioning task: BMT and BMHRL plugged into the training harness.

One global batch of segments per step (composition depends on seed and epoch only); each worker
takes its contiguous slice, padded to the global batch's lengths, and every normaliser (token
counts, boundary counts, exploration statistics) is summed over the workers, so one worker and
N workers compute the same update. Random draws of the RL phases (the sampled token per
position, the exploration vector) come from the batch, drawn from (seed, epoch, batch), not
from a worker's RNG. The phase of each epoch and the parameter groups it trains follow
:mod:`.schedule`; one Adam with one group per component (value functions included) steps only
the groups of the current phase (Adam is per parameter, so this equals the original's three
optimisers with frozen components).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from videxperts.errors import UserError
from videxperts.training.captioning.schedule import PHASE_GROUPS, PHASES, explores, phase_of
from videxperts.training.captioning.vocab import PAD
from videxperts.training.task import Column, Evaluation, Selection, Task

SAMPLE_CAPTIONS = 20  # kept in the test arrays (and written as sample_captions.json)


def _world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def global_sum(x: torch.Tensor) -> torch.Tensor:
    """A detached count summed over every worker (identity on one)."""
    x = x.detach().float().clone()
    if _world() > 1:
        dist.all_reduce(x)
    return x


class PhasedAdam(torch.optim.Adam):
    """Adam over named groups; ``step`` skips the groups the model's current phase freezes."""

    def __init__(self, groups: list[dict], model: nn.Module, lr: float, warm_lr: float, **kw: Any) -> None:
        super().__init__(groups, lr=lr, **kw)
        self._model = [model]  # not a submodule/state: only read for its phase
        self.lr, self.warm_lr = lr, warm_lr

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        phase = getattr(self._model[0], "phase", "warm")
        active = PHASE_GROUPS.get(phase, ())
        for group in self.param_groups:
            group["lr"] = self.warm_lr if phase == "warm" else self.lr
            if group.get("name", "all") != "all" and group["name"] not in active:
                for p in group["params"]:
                    p.grad = None
        return super().step(closure)


def bmhrl_groups(system: nn.Module) -> list[dict]:
    a = system.agent
    parts = {"enc": [a.bm_enc], "worker_fus": [a.bm_worker_fus], "manager_fus": [a.bm_manager_fus],
             "manager": [a.manager], "worker": [a.worker_goal_att, a.worker_proj],
             "worker_value": [system.worker_value], "manager_value": [system.manager_value]}
    return [{"name": k, "params": [p for m in mods for p in m.parameters() if p.requires_grad]}
            for k, mods in parts.items()]


class CaptioningStep(nn.Module):
    """The whole per-batch computation (losses, rewards, value functions) in one forward for DDP."""

    def __init__(self, model: nn.Module, cfg: Any) -> None:
        super().__init__()
        self.model = model
        self.cfg = cfg
        from videxperts.training.captioning.rewards import PrefixMeteor

        self.meteor = PrefixMeteor(cfg.rl.reward_processes)

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        from videxperts.training.captioning.losses import kl_sum, smoothed_target

        cfg = self.cfg
        tokens = batch["tokens"]
        inp, tgt = tokens[:, :-1], tokens[:, 1:]
        nonpad = tgt != PAD
        world = float(_world())
        n_tok = global_sum(nonpad.sum()).clamp(min=1)
        s = cfg.train.smoothing
        if cfg.model.arch == "bmt":
            logp = self.model(batch["v"], batch["a"], inp, batch["v_rows"], batch["a_rows"])
            loss = kl_sum(logp, smoothed_target(tgt, logp.shape[-1], s, PAD)) / n_tok * world
            return {"loss": loss, "cap_loss": global_sum(loss) / world}
        phase = PHASES[int(batch["phase"].flatten()[0])]
        self.model.phase = phase
        z = batch["noise_z"] if bool(batch["explore"].flatten()[0]) else None
        out = self.model.agent(batch["v"], batch["a"], inp, batch["v_rows"], batch["a_rows"], z)
        return self._rl_losses(batch, out, tgt, nonpad, phase, n_tok, world)

    def _rl_losses(self, batch: dict, out: dict, tgt: torch.Tensor, nonpad: torch.Tensor, phase: str,
                   n_tok: torch.Tensor, world: float) -> dict[str, torch.Tensor]:
        from videxperts.training.captioning.losses import biased_target, kl_sum, smoothed_target
        from videxperts.training.captioning.rewards import hypothesis_words, manager_rewards, worker_rewards

        cfg, compat, s = self.cfg, self.cfg.model.compat, self.cfg.train.smoothing
        logp = out["logp"].float()
        vocab = logp.shape[-1]
        if phase == "warm":
            sampled = logp.argmax(-1)
        else:  # one token per position from the teacher-forced distribution (inverse CDF of the batch's u)
            cdf = logp.detach().exp().cumsum(-1)
            sampled = torch.searchsorted(cdf, (batch["u"][..., None] * cdf[..., -1:]).contiguous())[..., 0]
            sampled = sampled.clamp(max=vocab - 1)
        lengths = nonpad.sum(1).tolist()
        ids = sampled.cpu().tolist()
        words = [hypothesis_words(batch["itos"], row, compat.specials_in_hypothesis) for row in ids]
        scores = self.meteor(batch["refs"], words, lengths) if words else []
        r_w = worker_rewards(scores, tgt.shape[1], compat.eos_negative_reward).to(logp.device)
        seg = out["seg"] * nonpad
        forced = seg.clone()
        forced[:, 0] = 1
        gamma = cfg.rl.gamma_worker if compat.manager_gamma_from_worker else cfg.rl.gamma_manager
        r_m = manager_rewards(r_w, forced, gamma)
        bounds = forced if compat.forced_boundary_inplace else seg
        wv = self.model.worker_value(torch.cat([out["worker_feat"].detach(), out["goals"].detach()], -1))
        mv = self.model.manager_value(out["manager_feat"].detach())
        w_loss = self._value_loss(wv, r_w, nonpad.float(), world)
        m_loss = self._value_loss(mv, r_m, bounds.float(), world)
        if phase == "warm":
            cap = kl_sum(logp, smoothed_target(tgt, vocab, s, PAD)) / n_tok * world
            amp_mean = torch.zeros(())
            reward = r_w
        else:
            if phase == "worker":
                score, norm, value, mask, reward = r_w, nonpad.sum(1), wv, nonpad.float(), r_w
            else:
                score, norm, value, mask, reward = r_m * bounds, bounds.sum(1), mv, bounds.float(), r_m
            if cfg.rl.stabilize:
                score = score - value.detach() * mask
            p_sampled = logp.exp().gather(-1, sampled[..., None])[..., 0]
            if not compat.amplitude_grad:
                p_sampled = p_sampled.detach()
            amp = (score * p_sampled * norm[:, None].float()).clamp(0, 1)
            cap = kl_sum(logp, biased_target(tgt, sampled, amp, vocab, s, PAD)) / (0.2 * n_tok) * world
            amp_mean = global_sum((amp.detach() * nonpad).sum()) / n_tok
        # every term stays in the graph (weight 0 when its phase does not train it): DDP's graph is static
        wv_on = 1.0 if phase in ("warm", "worker") else 0.0
        mv_on = 1.0 if phase in ("warm", "manager") else 0.0
        loss = cap + wv_on * w_loss + mv_on * m_loss
        # the logged values are the global batch's (each rank holds its share of the loss)
        mean_reward = global_sum((reward * nonpad).sum()) / n_tok
        rows = global_sum(torch.tensor(float(tgt.shape[0])))
        return {"loss": loss, "cap_loss": global_sum(cap) / world, "worker_value_loss": global_sum(w_loss) / world,
                "manager_value_loss": global_sum(m_loss) / world, "amplitude": amp_mean,
                "reward": mean_reward, "boundaries": global_sum(bounds.float().sum()) / rows,
                "phase": torch.tensor(float(PHASES.index(phase)))}  # 0 warm, 1 worker, 2 manager

    def _value_loss(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, world: float) -> torch.Tensor:
        sq = ((pred - target.detach()) ** 2 * mask).sum()
        if self.cfg.model.compat.value_loss_mean_all:  # mean over all B·L entries, masked ones included
            denom = global_sum(torch.tensor(float(mask.numel()), device=mask.device))
        else:
            denom = global_sum(mask.sum()).clamp(min=1)
        return sq / denom.to(sq.device) * world


class CaptioningTask(Task):
    name = "captioning"
    selection = Selection("val/METEOR", "max")
    report_tables = {"captioning": (Column("Bleu_3", "B@3", 2), Column("Bleu_4", "B@4", 2),
                                    Column("METEOR", "METEOR", 2), Column("ROUGE_L", "ROUGE-L", 2), Column("CIDEr", "CIDEr", 2))}

    # ------------------------------------------------------------------ config and model
    def parse_config(self, raw: dict[str, Any], source: str) -> Any:
        from videxperts.training.captioning.config import parse_config

        return parse_config(raw, source)

    def build_model(self, cfg: Any) -> nn.Module:
        from videxperts.training.captioning.models import build_model

        return build_model(cfg)

    def with_data(self, cfg: Any, data_dir: str | None) -> Any:
        """``--data DIR`` fills ``data.dataset`` when the config leaves it empty (and sizes the vocabulary)."""
        if data_dir is None or cfg.data.dataset is not None:
            return cfg
        from videxperts.training.captioning.config import parse_config

        raw = cfg.to_dict()
        raw["data"]["dataset"] = str(Path(data_dir).resolve())
        return parse_config(raw, cfg.source, type(cfg))

    def counted_module(self, model: nn.Module) -> nn.Module:
        return getattr(model, "agent", model)

    def describe(self, cfg: Any, model: nn.Module) -> dict[str, Any]:
        out: dict[str, Any] = {"arch": cfg.model.arch, "vocab_size": cfg.model.vocab_size}
        if cfg.model.arch == "bmhrl":
            from videxperts.training.describe import count_parameters

            a = model.agent
            out["value_functions"] = {"worker_value": count_parameters(model.worker_value),
                                      "manager_value": count_parameters(model.manager_value)}
            out["phase_trainable"] = {
                "worker": sum(count_parameters(m) for m in (a.bm_enc, a.bm_worker_fus, a.worker_goal_att,
                                                            a.worker_proj)),
                "manager": sum(count_parameters(m) for m in (a.bm_manager_fus, a.manager)),
            }
        return out

    def run_tags(self, cfg: Any) -> dict[str, str]:
        return {"model.arch": cfg.model.arch}

    # ------------------------------------------------------------------ data
    def check_store(self, cfg: Any, store: Any, source: str, url: str) -> None:
        have = store.experts
        for key, expert, dim in (("video_expert", cfg.data.video_expert, cfg.model.d_vid),
                                 ("audio_expert", cfg.data.audio_expert, cfg.model.d_aud)):
            if expert not in have:
                raise UserError(f"{source}: data.{key}: store {url} has no features for {expert!r} "
                                f"(it has: {', '.join(sorted(have)) or 'none'})")
            if int(have[expert]["dim"]) != int(dim):
                raise UserError(f"{source}: data.{key}: store {url} holds {have[expert]['dim']}-dim {expert!r} "
                                f"features but the model expects {dim}")

    def check_resources(self, cfg: Any) -> None:
        if cfg.data.dataset is None:
            raise UserError(f"{cfg.source}: data.dataset: training needs the dataset directory with the timed "
                            "captions (set data.dataset, or pass --data DIR)")
        if cfg.data.wordvec.path and not Path(cfg.data.wordvec.path).is_file():
            raise UserError(f"{cfg.source}: data.wordvec.path: {cfg.data.wordvec.path}: no such file")
        if cfg.train.val_scorer == "anet":
            from videxperts.training.captioning.evaluation import anet_evaluator

            anet_evaluator()
        from videxperts.training.checkpoint import is_run_id

        critic = cfg.model.critic.checkpoint
        if cfg.model.arch == "bmhrl" and critic and not Path(critic).is_file() and not is_run_id(critic):
            raise UserError(f"{cfg.source}: model.critic.checkpoint: {critic}: no such file "
                            "(give a critic run's model.pt or its MLflow run id)")
        init = cfg.model.init_checkpoint
        if init and not Path(init).is_file() and not is_run_id(init):
            raise UserError(f"{cfg.source}: model.init_checkpoint: {init}: no such file "
                            "(give a run's model.pt or its MLflow run id)")
        if cfg.model.arch == "bmhrl" and not critic and not init and cfg.model.compat.critic_required:
            raise UserError(f"{cfg.source}: model.critic.checkpoint: the agent needs a trained segment critic "
                            "(compat.critic_required): train one with 'task: segment_critic', or turn the switch off")

    def resolve_references(self, cfg: Any, tracking_uri: str, work_dir: Path) -> Any:
        """``model.critic.checkpoint`` / ``model.init_checkpoint`` given as a run's MLflow id: its
        model.pt, downloaded to ``work_dir/{critic,init}/<run id>/`` (the logged config names it)."""
        from videxperts.training.captioning.config import parse_config
        from videxperts.training.checkpoint import resolve_checkpoint

        raw = cfg.to_dict()
        refs = [("model.critic.checkpoint", raw["model"]["critic"], "checkpoint", "critic"),
                ("model.init_checkpoint", raw["model"], "init_checkpoint", "init")]
        changed = False
        for key, section, field_name, folder in refs:
            ref = section.get(field_name)
            if not ref or Path(ref).is_file() or (folder == "critic" and cfg.model.arch != "bmhrl"):
                continue
            try:
                section[field_name] = resolve_checkpoint(ref, tracking_uri, work_dir / folder / ref)
            except UserError as exc:
                raise UserError(f"{cfg.source}: {key}: {exc}") from None
            changed = True
        return parse_config(raw, cfg.source, type(cfg)) if changed else cfg

    def driver_resources(self, cfg: Any, tracking_uri: str | None, work_dir: Path) -> dict[str, Any]:
        from videxperts.training.captioning.data import read_segments
        from videxperts.training.captioning.vocab import vocabulary_for

        self.check_resources(cfg)
        vocab = vocabulary_for(cfg.data.dataset, cfg.data.min_freq, f"{cfg.source}: data.dataset")
        return {"segments": read_segments(cfg.data.dataset), "itos": vocab.itos}

    def load_split(self, reader: Any, cfg: Any, video_ids: list[str], resources: Mapping[str, Any]) -> Any:
        from videxperts.training.captioning.data import load_segments
        from videxperts.training.captioning.vocab import Vocabulary

        if "segments" not in resources:  # `videxperts evaluate`: the config's dataset gives captions and vocabulary
            resources = self.driver_resources(cfg, None, Path("."))
        return load_segments(reader, cfg, video_ids, resources["segments"], Vocabulary(list(resources["itos"])))

    # ------------------------------------------------------------------ training
    def build_optimizer(self, model: nn.Module, cfg: Any) -> tuple[torch.optim.Optimizer, Any]:
        o = cfg.optim
        kw = {"betas": (o.beta1, o.beta2), "eps": o.eps, "weight_decay": o.weight_decay}
        if cfg.model.arch == "bmhrl":
            opt: torch.optim.Optimizer = PhasedAdam(bmhrl_groups(model), model, o.lr, o.warmstart_lr, **kw)
        else:
            opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=o.lr, **kw)
        return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)

    def step_module(self, model: nn.Module, cfg: Any) -> nn.Module:
        return CaptioningStep(model, cfg)

    def epoch_batches(self, cfg: Any, splits: Mapping[str, Any], resources: Mapping[str, Any], epoch: int,
                      rank: int, world_size: int) -> Iterator[dict[str, Any]]:
        train = splits["train"]
        e0 = epoch - 1  # the original's 0-based epoch
        compat = cfg.model.compat
        phase = "warm" if cfg.model.arch == "bmt" else phase_of(
            e0, cfg.rl.warmstart_epochs, cfg.rl.train_worker_first, compat.warmstart_schedule)
        explore = cfg.model.arch == "bmhrl" and explores(e0, phase, compat.stale_exploration_flag)
        order = np.random.default_rng([int(cfg.train.seed), epoch]).permutation(len(train))
        bs = int(cfg.train.batch_size)
        for k, lo in enumerate(range(0, len(order), bs)):
            glob = order[lo:lo + bs]
            lens = train.lengths(glob)
            rng = np.random.default_rng([int(cfg.train.seed), epoch, k])
            u = torch.from_numpy(rng.random((len(glob), lens[2] - 1)))
            z = torch.from_numpy(rng.standard_normal(cfg.model.goal_dim)).float()
            part = np.array_split(np.arange(len(glob)), world_size)[rank]
            if len(part) == 0:
                continue
            batch = train.batch(glob[part], *lens)
            batch.update({"itos": train.itos, "u": u[part].float(), "noise_z": z, "phase": torch.tensor([PHASES.index(phase)]),
                          "explore": torch.tensor([explore])})
            yield batch

    def example_batch(self, cfg: Any, batch_size: int, seed: int = 0) -> dict[str, Any]:
        """Random segments at the config's sizes (I3D 2.56 s and VGGish 0.96 s rows of a 30 s event,
        12-word captions over a synthetic vocabulary); BMHRL batches are worker-phase RL steps."""
        g = torch.Generator().manual_seed(seed)
        m, words = cfg.model, 12
        itos = ["<unk>", "<blank>", "<s>", "</s>", *(f"w{i}" for i in range(max(0, m.vocab_size - 4)))]
        tokens = torch.randint(4, m.vocab_size, (batch_size, words + 2), generator=g)
        tokens[:, 0], tokens[:, -1] = 2, 3  # <s> ... </s>
        v_len, a_len = 12, 32
        phase = "warm" if m.arch == "bmt" else "worker"
        return {"v": torch.randn(batch_size, v_len, m.d_vid, generator=g),
                "a": torch.randn(batch_size, a_len, m.d_aud, generator=g),
                "v_rows": torch.ones(batch_size, v_len, dtype=torch.bool),
                "a_rows": torch.ones(batch_size, a_len, dtype=torch.bool), "tokens": tokens,
                "refs": [" ".join(itos[t] for t in row[1:-1]) for row in tokens.tolist()], "itos": itos,
                "u": torch.rand(batch_size, words + 1, generator=g),
                "noise_z": torch.randn(m.goal_dim, generator=g), "phase": torch.tensor([PHASES.index(phase)]),
                "explore": torch.tensor([False])}

    def should_stop(self, cfg: Any, history: list[dict]) -> bool:
        """Early stop after ``train.early_stop_after`` evaluated epochs without a better METEOR."""
        scores = [(r["epoch"], r[self.selection.metric]) for r in history if self.selection.metric in r]
        if not scores:
            return False
        best_epoch = max(scores, key=lambda t: (t[1], -t[0]))[0]
        return sum(1 for e, _ in scores if e > best_epoch) >= int(cfg.train.early_stop_after)

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, model: nn.Module, data: Any, device: torch.device) -> Evaluation:
        from videxperts.training.captioning.evaluation import caption_split, references, score, submission

        cfg = getattr(model, "caption_cfg", None)
        bs, max_len, beam, scorer = 32, 30, 1, "nltk"
        if cfg is not None:
            bs, max_len, beam, scorer = (cfg.train.eval_batch_size, cfg.decode.max_len, cfg.decode.beam,
                                         cfg.train.val_scorer)
        sentences = caption_split(model, data, device, bs, max_len, beam)
        metrics = score(submission(data, sentences), references(data), scorer)
        n = min(SAMPLE_CAPTIONS, len(sentences))
        arrays = {"sample_video": np.array(data.video_ids[:n]), "sample_caption": np.array(sentences[:n]),
                  "sample_reference": np.array(data.captions[:n]), "vocab": np.array(data.itos)}
        return Evaluation(metrics, arrays, {"segments": len(data), "videos": len(set(data.video_ids))})

    def plots(self, result: dict[str, Any], arrays: Mapping[str, np.ndarray], out_dir: Path, title: str) -> None:
        """Sample captions next to their references, and the vocabulary (JSON, beside the checkpoint)."""
        if "sample_caption" in arrays:
            rows = [{"video_id": str(v), "caption": str(c), "reference": str(r)} for v, c, r in
                    zip(arrays["sample_video"], arrays["sample_caption"], arrays["sample_reference"], strict=True)]
            (out_dir / "sample_captions.json").write_text(json.dumps(rows, indent=1))
        if "vocab" in arrays:
            from videxperts.training.captioning.vocab import Vocabulary

            Vocabulary([str(w) for w in arrays["vocab"]]).save(out_dir.parent / "vocab.json")


class CriticStep(nn.Module):
    """Binary cross-entropy of the critic's boundary logits against the rule labels (non-pad positions)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        inp = batch["tokens"][:, :-1]
        mask = (batch["tokens"][:, 1:] != PAD).float()
        logits = self.model(inp)
        bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, batch["seg"].float(), reduction="none")
        n = global_sum(mask.sum()).clamp(min=1)
        loss = (bce * mask).sum() / n * _world()
        return {"loss": loss, "bce": global_sum(loss) / _world()}


def critic_batch(batch: dict[str, Any], itos: list[str]) -> dict[str, Any]:
    """Adds the rule-based boundary labels (B, L) of the batch's captions."""
    from videxperts.training.captioning.critic import boundary_labels

    tok = batch["tokens"]
    seg = torch.zeros(tok.shape[0], tok.shape[1] - 1, dtype=torch.long)
    for r, row in enumerate(tok.tolist()):
        real = [t for t in row if t != PAD]
        labels = boundary_labels(real, itos)
        seg[r, :len(labels)] = torch.tensor(labels, dtype=torch.long)
    batch["seg"] = seg
    return batch


class SegmentCriticTask(CaptioningTask):
    """Trains the segment critic the BMHRL agent loads (``model.critic.checkpoint``: this run's model.pt)."""

    name = "segment_critic"
    selection = Selection("val/F1", "max")
    report_tables = {"boundaries": (Column("precision", "precision", 1), Column("recall", "recall", 1),
                                    Column("F1", "F1", 1))}

    def parse_config(self, raw: dict[str, Any], source: str) -> Any:
        from videxperts.training.captioning.config import SegmentCriticConfig, parse_config

        return parse_config(raw, source, SegmentCriticConfig)

    def describe(self, cfg: Any, model: nn.Module) -> dict[str, Any]:
        return {"arch": "critic", "vocab_size": cfg.model.vocab_size}

    def build_optimizer(self, model: nn.Module, cfg: Any) -> tuple[torch.optim.Optimizer, Any]:
        o = cfg.optim
        opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=o.lr,
                               betas=(o.beta1, o.beta2), eps=o.eps, weight_decay=o.weight_decay)
        return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)

    def step_module(self, model: nn.Module, cfg: Any) -> nn.Module:
        return CriticStep(model)

    def epoch_batches(self, cfg: Any, splits: Mapping[str, Any], resources: Mapping[str, Any], epoch: int,
                      rank: int, world_size: int) -> Iterator[dict[str, Any]]:
        itos = splits["train"].itos
        for batch in super().epoch_batches(cfg, splits, resources, epoch, rank, world_size):
            yield critic_batch({"tokens": batch["tokens"]}, itos)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, data: Any, device: torch.device) -> Evaluation:
        """Boundary precision / recall / F1 (×100) of ``sigmoid > threshold`` against the rule labels."""
        cfg = model.caption_cfg
        tp = fp = fn = 0
        for lo in range(0, len(data), 64):
            b = critic_batch({"tokens": data.batch(range(lo, min(lo + 64, len(data))))["tokens"]}, data.itos)
            mask = b["tokens"][:, 1:] != PAD
            pred = (torch.sigmoid(model(b["tokens"][:, :-1].to(device))).cpu() > cfg.model.critic.threshold) & mask
            gold = b["seg"].bool() & mask
            tp += int((pred & gold).sum())
            fp += int((pred & ~gold).sum())
            fn += int((~pred & gold).sum())
        precision = 100.0 * tp / max(tp + fp, 1)
        recall = 100.0 * tp / max(tp + fn, 1)
        f1 = 2 * precision * recall / max(precision + recall, 1e-9)
        return Evaluation({"precision": precision, "recall": recall, "F1": f1}, {},
                          {"segments": len(data), "boundaries": tp + fn})
