"""Preflight of a published config against a store the paper profile wrote: every mismatch in one line, with hints."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from videxperts.storage.store import FeatureStore

EXE = str(Path(sys.executable).with_name("videxperts"))
PROV = {"backbone": "x", "weights": "random-init:seed=0", "sampling": {}, "extractor_version": "1", "dtype": "float32"}
# what `extract --profile paper` registers (configs/extract/paper.yaml): no rgb, words through minilm
PAPER = {"scene": 2208, "inst": 2048, "i3d": 1024, "r2p1d": 512, "audio": 128, "ocr": 384, "speech": 384, "face": 512}
TEXT = {"minilm": 384, "gpt2": 768, "wordvec": 300}


def test_msrvtt_ce_on_a_paper_profile_store_lists_every_mismatch(tmp_path: Path) -> None:
    url = str(tmp_path / "paper.zarr")
    store = FeatureStore.open(url, "a")
    for name, dim in PAPER.items():
        store.ensure_expert(name, dim, PROV)
    for name, dim in TEXT.items():
        store.ensure_text_encoder(name, dim, PROV)
    res = subprocess.run([EXE, "train", "--config", "msrvtt_ce", "--store", url, "--work-dir", str(tmp_path / "w")],  # noqa: S603
                         capture_output=True, text=True, timeout=300)
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1, res.stderr
    line = lines[0]
    assert line.startswith("videxperts: error: ") and f"does not match store {url}: 4 problems: " in line
    assert "data.experts.rgb: no features for this expert (it has: audio, face, i3d, inst, ocr, r2p1d, scene, " \
           "speech) (SENet-154 ImageNet features; videxperts has no extractor for them" in line
    assert "data.experts.speech.dim is 300 but the store holds 384-dim features (300 is the published word2vec " \
           "words; the profiles embed speech words with minilm: --set data.experts.speech.dim=384" in line
    assert "data.experts.ocr.dim is 300 but the store holds 384-dim features" in line
    assert "data.text.encoder: no captions encoded with 'gpt' (it has: gpt2, minilm, wordvec) (the published " \
           "'gpt' text features are called 'gpt2' by the extraction profiles: --set data.text.encoder=gpt2" in line
    assert not (tmp_path / "w").exists()  # nothing created before the check
