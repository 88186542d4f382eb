"""The real OCR expert's words and times reach the store through the extraction actors' code and come back."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

import videxperts
from tests.extractors.test_ocr import view, word_frame
from videxperts.extractors.experts.ocr import OCRExpert
from videxperts.pipelines.extract_actors import ExpertWorker, WriterWorker
from videxperts.pipelines.extract_balance import CpuMeter
from videxperts.storage.store import FeatureStore


def test_ocr_words_flow_from_expert_worker_to_store_view(tmp_path: Path) -> None:
    expert = OCRExpert(fps=1.0)
    expert.load()
    worker = ExpertWorker.__new__(ExpertWorker)  # the actor's class without Ray: same run() code
    worker.name, worker.expert, worker.batch_size, worker.node = "ocr", expert, 4, "local"
    worker.meter = CpuMeter("ocr")
    frames = [word_frame(None), word_frame("RIVER"), word_frame("APPLE")]
    status, payload = worker.run("clip1", [view(frames, [0.0, 1.0, 2.0], vid="clip1")])
    assert status["ok"] and payload["side"] == {"words": ["river", "apple"], "times": [1.0, 2.0]}

    url = str(tmp_path / "store.zarr")
    store = FeatureStore.open(url, "a")
    store.ensure_expert("ocr", expert.dim, expert.provenance())
    writer = WriterWorker.__new__(WriterWorker)
    writer.store, writer.writer = store, store.writer("w")
    writer.commit_every, writer.commit_seconds, writer.buffered, writer.keys = 1, 0.0, [], {}
    writer.last_commit, writer.node, writer.busy, writer.error = time.monotonic(), "local", 0.0, None
    writer.meter = CpuMeter("writer")
    reply = writer.write(0, "clip1", "ocr", payload)
    assert reply["committed"] == [0] and "store_error" not in reply
    words = videxperts.open_store(url).words("ocr", "clip1")
    assert words["word"].tolist() == ["river", "apple"] and words["start"].tolist() == [1.0, 2.0]
    feats, avail = videxperts.open_store(url).features("ocr", ["clip1"], mode="mean")
    assert avail.tolist() == [True] and np.isfinite(feats).all()
