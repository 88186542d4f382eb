"""A split as the matching models see it: region rows per item, C captions per item as ids,
word-vector slots, decoder labels and the ID target; and the global batches of an epoch.

Captions are indexed as in the original (``caption = item * C + k``, ``item = caption // C``);
one global batch is ``batch_size`` caption-image pairs drawn from a permutation fixed by
(seed, epoch), so one worker and N workers see the same batches (each takes a contiguous slice).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from videxperts.errors import UserError
from videxperts.training.matching.config import MatchingConfig
from videxperts.training.matching.vocab import END, PAD, UNK, Vocabulary


@dataclass
class MatchingData:
    item_ids: list[str]
    regions: np.ndarray  # [N, R, D] float32, or a read-only memory map of them (large splits)
    ids: np.ndarray  # [N*C, Lid] int64 vocabulary ids (<start> ... <end>), 0-padded
    lengths: np.ndarray  # [N*C] lengths of the id captions
    vec_ids: np.ndarray  # [N*C, max_words] rows of `table` making the word-vector sequence (0 = zeros)
    labels: np.ndarray  # [N*C, label_len] decoder targets
    label_mask: np.ndarray  # [N*C, label_len]
    table: np.ndarray  # [V, word_dim] word vectors aligned with vocabulary ids
    captions_per_item: int
    eval_batch_size: int | None = None  # set on the validation split (published: 64 there, 128 on test)

    def __len__(self) -> int:
        return len(self.item_ids)

    @property
    def n_captions(self) -> int:
        return len(self.lengths)

    def truncate(self, items: int) -> None:
        """Keep the first ``items`` items and their captions, in place (the published dev split
        is cut to its first 5,000 captions, 1,000 images)."""
        c = self.captions_per_item * items
        self.item_ids, self.regions = self.item_ids[:items], self.regions[:items]
        self.ids, self.lengths, self.vec_ids = self.ids[:c], self.lengths[:c], self.vec_ids[:c]
        self.labels, self.label_mask = self.labels[:c], self.label_mask[:c]

    def batch(self, caps: np.ndarray, with_targets: bool = True) -> dict[str, torch.Tensor]:
        """Tensors of the caption rows ``caps`` and their items (item index + 1 is the ID target)."""
        items = caps // self.captions_per_item
        lid = max(1, int(self.lengths[caps].max(initial=1)))
        out = {"regions": torch.from_numpy(self.regions[items]),
               "ids": torch.from_numpy(self.ids[caps, :lid]),
               "lengths": torch.from_numpy(self.lengths[caps]),
               "vectors": torch.from_numpy(self.table[self.vec_ids[caps]])}
        if with_targets:
            out.update(labels=torch.from_numpy(self.labels[caps]), label_mask=torch.from_numpy(self.label_mask[caps]),
                       idx=torch.from_numpy(items.astype(np.int64) + 1))
        return out


def decoder_labels(ids: list[int], label_len: int) -> tuple[np.ndarray, np.ndarray]:
    """``<start>`` + words + ``<end>`` cut to label_len - 1 (last set to ``<end>``), 0-padded to
    label_len; mask 1 up to and including the first pad position."""
    lab = np.zeros(label_len, np.int64)
    body = list(ids[: label_len - 1])
    if len(ids) > label_len - 1:
        body[-1] = END
    lab[: len(body)] = body
    mask = np.zeros(label_len, np.float32)
    mask[: min(len(body) + 1, label_len)] = 1.0
    return lab, mask


def vector_slots(ids: list[int], has_vector: np.ndarray, max_words: int, drop_oov: bool) -> np.ndarray:
    """Table rows of the word-vector sequence: aligned with ``ids`` (unknown -> ``<unk>``'s vector),
    or, under ``compat.drop_oov_words``, without the words lacking a vocabulary id or a vector."""
    if drop_oov:
        seq = [i for i in ids if i != UNK and has_vector[i]]
    else:
        seq = [i if has_vector[i] else UNK for i in ids]
    out = np.full(max_words, PAD, np.int64)
    seq = seq[:max_words]
    out[: len(seq)] = seq
    return out


def resample_rows(x: np.ndarray, mask: np.ndarray, rows: int, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """[N, L, D] rows with a row mask -> [N, rows, D] and which items had any row.

    ``first``: the first ``rows`` rows (an item with fewer is spread as ``chunks`` does);
    ``chunks``: the mean of each of ``rows`` contiguous chunks (rows repeated when an item has fewer),
    which turns T frame or clip features of a video into its "regions".
    """
    n, _, d = x.shape
    count = mask.sum(1)
    out = np.zeros((n, rows, d), np.float32)
    for i in range(n):
        t = int(count[i])
        if t == 0:
            continue
        valid = x[i][mask[i]]
        if mode == "first" and t >= rows:
            out[i] = valid[:rows]
            continue
        lo = (np.arange(rows) * t) // rows
        hi = np.maximum(((np.arange(1, rows + 1)) * t) // rows, lo + 1)
        sums = np.concatenate([np.zeros((1, d), np.float64), np.cumsum(valid, 0, dtype=np.float64)])
        out[i] = ((sums[hi] - sums[lo]) / (hi - lo)[:, None]).astype(np.float32)
    return out, count > 0


def build_split(cfg: MatchingConfig, item_ids: Sequence[str], regions: np.ndarray,
                captions: Mapping[str, Sequence[str]], vocab: Vocabulary, table: np.ndarray,
                has_vector: np.ndarray) -> MatchingData:
    """A split from region rows [N, R, D] and each item's caption strings (the first C are used;
    an item with fewer repeats them in order, an item with none is an error naming it)."""
    c = cfg.data.captions_per_item
    all_ids, lengths, vec, labels, masks = [], [], [], [], []
    for item in item_ids:
        texts = list(captions.get(item) or [])
        if not texts:
            raise UserError(f"item {item!r} has no captions (captions.parquet of the dataset)")
        for k in range(c):
            ids = vocab.encode(texts[k % len(texts)])
            all_ids.append(ids)
            lengths.append(len(ids))
            vec.append(vector_slots(ids, has_vector, cfg.text.max_words, cfg.compat.drop_oov_words))
            lab, mask = decoder_labels(ids, cfg.model.decoder.label_len)
            labels.append(lab)
            masks.append(mask)
    width = max(lengths) if lengths else 1
    padded = np.zeros((len(all_ids), width), np.int64)
    for r, ids in enumerate(all_ids):
        padded[r, : len(ids)] = ids
    rows = regions if isinstance(regions, np.memmap) else np.ascontiguousarray(regions, np.float32)
    return MatchingData(list(item_ids), rows, padded,
                        np.asarray(lengths, np.int64), np.stack(vec), np.stack(labels), np.stack(masks),
                        table, c)


def global_batches(n_captions: int, batch_size: int, seed: int, epoch: int) -> Iterator[np.ndarray]:
    """Caption rows of each global batch of ``epoch`` (a final batch under 2 rows is dropped)."""
    order = np.random.default_rng([seed, epoch]).permutation(n_captions)
    for start in range(0, n_captions, batch_size):
        rows = order[start : start + batch_size]
        if len(rows) >= 2:
            yield rows
