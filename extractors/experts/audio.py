"""Audio expert: VGGish (Hershey et al. 2017) → 128-d per 0.96 s segment.

Frontend (exactly VGGish's ``waveform_to_examples``): 16 kHz mono, 25 ms Hann frames every
10 ms, 512-point magnitude FFT, 64 mel bands 125-7500 Hz (HTK mel, triangles in the mel
domain, DC bin zeroed), ``log(mel + 0.01)``, non-overlapping patches of 96 frames x 64 bands.
Framing is done directly with ``unfold`` + ``torch.fft.rfft`` so frames start at sample
``160 k`` as in the original (torch.stft would centre the 400-sample window in the 512-point
frame); torchaudio resamples audio that is not already 16 kHz.

Segments: a waveform of S samples gives ``floor(S / 15360)`` segments. The last frame of a
segment reads 15 ms past its end: the decoder hands every window those 15 ms of the audio that
follows, so zeros are padded only where the audio itself ends (``tail: drop`` drops such a
final segment instead, as VGGish does), and a video whose whole audio is shorter than one
segment gives one zero-padded segment (none with ``tail: drop``). So a window of k x 0.96 s
gives k segments, each computed from the real audio, and windows concatenate.

Network: VGG-like, with the parameter names of the common PyTorch port (torchvggish):
``features.{0,3,6,8,11,13}`` convolutions and ``embeddings.{0,2,4}`` linear layers. The
embedding layer has no ReLU by default (the TensorFlow original); ``final_relu: true``
reproduces the port. Optional PCA postprocessing (``pca``: a ``.pt`` with
``pca_eigen_vectors`` [128, 128] and ``pca_means`` [128]) and 8-bit quantisation
(``quantize``) reproduce the released AudioSet embeddings.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from videxperts.extractors.arrays import writable
from videxperts.extractors.base import AudioNeeds, DecodeNeeds, MediaView
from videxperts.extractors.experts._frames import ExpertConfigError, TorchExpert, Unit
from videxperts.extractors.weights import WeightsError, file_sha256

SAMPLE_RATE = 16_000
WIN, HOP, NFFT = 400, 160, 512
PATCH_FRAMES, MEL_BANDS = 96, 64
SEGMENT_SAMPLES = PATCH_FRAMES * HOP  # 15360 = 0.96 s
LOG_OFFSET = 0.01


def _hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    return 1127.0 * np.log(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def vggish_mel_matrix(num_bins: int = NFFT // 2 + 1, sample_rate: int = SAMPLE_RATE,
                      bands: int = MEL_BANDS, low: float = 125.0, high: float = 7500.0) -> np.ndarray:
    """``[num_bins, bands]`` mel weights, triangles in the mel domain as in VGGish's mel_features."""
    bins_mel = _hz_to_mel(np.linspace(0.0, sample_rate / 2.0, num_bins))
    edges = np.linspace(_hz_to_mel(low), _hz_to_mel(high), bands + 2)
    w = np.empty((num_bins, bands))
    for i in range(bands):
        lo, c, hi = edges[i:i + 3]
        w[:, i] = np.maximum(0.0, np.minimum((bins_mel - lo) / (c - lo), (hi - bins_mel) / (hi - c)))
    w[0, :] = 0.0
    return w.astype(np.float32)


class LogMelFrontend:
    """Waveform (float32, 16 kHz) → log-mel frames ``[F, 64]``."""

    def __init__(self) -> None:
        self.window = torch.hann_window(WIN, periodic=True, dtype=torch.float32)
        self.mel = torch.from_numpy(vggish_mel_matrix())

    def __call__(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.numel() < WIN:
            return torch.zeros((0, MEL_BANDS))
        frames = wave.unfold(0, WIN, HOP) * self.window  # [F, 400]
        mag = torch.fft.rfft(frames, n=NFFT).abs()  # [F, 257]
        return torch.log(mag @ self.mel + LOG_OFFSET)


def waveform_to_patches(wave: np.ndarray | torch.Tensor, frontend: LogMelFrontend,
                        pad_short: bool = True, tail: str = "pad") -> torch.Tensor:
    """Mono 16 kHz waveform → ``[N, 96, 64]`` log-mel patches, one per whole 0.96 s segment.

    The last analysis frame of segment k reads 15 ms (``WIN - HOP`` samples) past the segment;
    those samples are taken from ``wave`` when it has them (the decoder hands every window
    that much audio beyond its end) and zero-padded only where the audio really ends.
    ``tail="drop"`` instead drops a final segment that lacks them (VGGish's own
    ``waveform_to_examples``, which only frames whole windows). ``pad_short`` (``tail="pad"``
    only): a non-empty waveform shorter than one segment still gives one zero-padded patch;
    only the first window of a video may do this, so that a later window's partial tail
    (dropped in the whole-video result) is dropped there too.
    """
    w = torch.as_tensor(writable(wave, np.float32)).flatten()
    extra = WIN - HOP
    if tail == "drop":
        n = max(0, w.numel() - extra) // SEGMENT_SAMPLES
    else:
        n = w.numel() // SEGMENT_SAMPLES
        if n == 0 and pad_short and w.numel() > 0:
            n = 1
    if n == 0:
        return torch.zeros((0, PATCH_FRAMES, MEL_BANDS))
    need = n * SEGMENT_SAMPLES + extra
    w = w[:need]
    w = torch.nn.functional.pad(w, (0, need - w.numel()))
    logmel = frontend(w)  # [96 n, 64]
    return logmel[: n * PATCH_FRAMES].reshape(n, PATCH_FRAMES, MEL_BANDS)


class VGGish(nn.Module):
    """The VGGish network with torchvggish parameter names; input ``[B, 1, 96, 64]`` → ``[B, 128]``."""

    def __init__(self, width: float = 1.0, final_relu: bool = False) -> None:
        super().__init__()
        c = [max(8, int(round(ch * width))) for ch in (64, 128, 256, 512)]
        fc = max(128, int(round(4096 * width)))
        self.features = nn.Sequential(
            nn.Conv2d(1, c[0], 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2, 2),
            nn.Conv2d(c[0], c[1], 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2, 2),
            nn.Conv2d(c[1], c[2], 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(c[2], c[2], 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2, 2),
            nn.Conv2d(c[2], c[3], 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(c[3], c[3], 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2, 2),
        )
        layers: list[nn.Module] = [
            nn.Linear(c[3] * 6 * 4, fc), nn.ReLU(inplace=True),
            nn.Linear(fc, fc), nn.ReLU(inplace=True),
            nn.Linear(fc, 128),
        ]
        if final_relu:
            layers.append(nn.ReLU(inplace=True))
        self.embeddings = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # [B, C, 6, 4]
        x = x.permute(0, 2, 3, 1).flatten(1)  # TF's NHWC flatten order, as the released weights expect
        return self.embeddings(x)


# variant -> width multiplier (the full net is small enough for CPU; "vggish_small" is for the demo)
VARIANTS = {"vggish": 1.0, "vggish_small": 0.25}


class VGGishExpert(TorchExpert):
    """128-d VGGish embeddings of every 0.96 s of audio."""

    name = "audio"
    version = "2"  # 2: a segment's last frame reads the audio that follows it (1 zero-padded it)
    variants = VARIANTS
    default_variant = "vggish"

    def __init__(self, *, final_relu: bool = False, pca: str | None = None, quantize: bool = False,
                 sample_rate: int = SAMPLE_RATE, tail: str = "pad", **kw: Any) -> None:
        self.final_relu, self.pca_path, self.quantize = bool(final_relu), pca, bool(quantize)
        if tail not in ("pad", "drop"):
            raise ExpertConfigError(f"audio: tail must be 'pad' or 'drop', got {tail!r}")
        self.tail = tail
        if sample_rate <= 0:
            raise ExpertConfigError(f"audio: sample_rate must be > 0, got {sample_rate}")
        self.sample_rate = int(sample_rate)
        kw.setdefault("size", 96)  # unused by audio; keeps the common validation happy
        kw.setdefault("batch_size", 32)
        super().__init__(**kw)
        self.frontend = LogMelFrontend()
        self.pca: tuple[torch.Tensor, torch.Tensor] | None = None
        self.pca_id: str | None = None

    def output_dim(self) -> int:
        return 128

    def decode_needs(self) -> DecodeNeeds:
        return DecodeNeeds(audio=AudioNeeds(sample_rate=self.sample_rate, segment_seconds=SEGMENT_SAMPLES / SAMPLE_RATE,
                                            tail_seconds=(WIN - HOP) / SAMPLE_RATE))

    def build_model(self) -> nn.Module:
        return VGGish(VARIANTS[self.variant], self.final_relu)

    def _channels_last(self) -> torch.memory_format:
        return torch.channels_last

    def load(self, device: str | None = None) -> None:
        super().load(device)
        if self.pca_path and self.pca is None:
            self.pca = self._load_pca(self.pca_path)

    def _load_pca(self, path: str) -> tuple[torch.Tensor, torch.Tensor]:
        try:
            d = torch.load(path, map_location="cpu", weights_only=True)
            vecs, means = d["pca_eigen_vectors"].float(), d["pca_means"].float().flatten()
        except (OSError, KeyError, RuntimeError) as e:
            raise WeightsError(f"{path}: not a VGGish PCA file with pca_eigen_vectors/pca_means ({e})") from e
        if vecs.shape != (128, 128) or means.shape != (128,):
            raise WeightsError(f"{path}: PCA shapes {tuple(vecs.shape)}/{tuple(means.shape)}, expected (128, 128)/(128,)")
        self.pca_id = f"sha256:{file_sha256(path)}"
        return vecs, means

    def units(self, view: MediaView) -> tuple[Any, np.ndarray]:
        if view.audio is None or len(view.audio) == 0:
            return None, np.zeros((0,), np.float64)
        wave = torch.as_tensor(writable(view.audio, np.float32)).flatten()
        sr = view.sample_rate or self.sample_rate
        if sr != SAMPLE_RATE:
            import torchaudio.functional as AF

            wave = AF.resample(wave, sr, SAMPLE_RATE)
        patches = waveform_to_patches(wave, self.frontend, pad_short=view.window_index == 0, tail=self.tail)
        times = view.audio_start + np.arange(len(patches), dtype=np.float64) * (SEGMENT_SAMPLES / SAMPLE_RATE)
        return patches, times

    def make_batch(self, data: list[Any], units: list[Unit]) -> torch.Tensor:
        return torch.stack([data[u.view][u.index] for u in units]).unsqueeze(1)  # [B, 1, 96, 64]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        y = self.model(x).float()
        if self.pca is not None:
            vecs, means = (t.to(y.device) for t in self.pca)
            y = (y - means) @ vecs.T
            if self.quantize:
                y = torch.round((y.clamp(-2.0, 2.0) + 2.0) * (255.0 / 4.0))
        return y

    def backbone(self) -> str:
        return self.variant

    def provenance(self) -> dict[str, Any]:
        p = super().provenance()
        p.pop("crop", None)
        return {**p, "final_relu": self.final_relu, "pca": self.pca_id or self.pca_path,
                "quantize": self.quantize, "frontend": "vggish-logmel-96x64",
                "segment_seconds": SEGMENT_SAMPLES / SAMPLE_RATE}
