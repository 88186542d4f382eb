"""The synthetic dataset's format constants and vocabulary: every generating attribute and its caption words."""

from __future__ import annotations

GENERATOR_VERSION = "3"
WIDTH, HEIGHT, FPS = 320, 240, 25
SAMPLE_RATE = 22_050  # espeak-ng's native rate: no resampling, AAC supports it
SPEC_DIR = ".synth"  # per-clip spec sidecars that make generation resumable
VIDEO_DIR = "videos"
SPLIT_FRACTIONS = {"train": 0.70, "val": 0.15, "test": 0.15}
FACE_FRACTION = 0.40
NO_AUDIO_FRACTION = 0.10

# ---------------------------------------------------------------------------------------------
# Vocabulary: every generating attribute and the words captions use for it.
# ---------------------------------------------------------------------------------------------
COLORS: dict[str, tuple[int, int, int]] = {  # RGB
    "red": (220, 30, 30),
    "blue": (30, 60, 220),
    "yellow": (245, 220, 30),
    "orange": (250, 140, 20),
    "purple": (140, 40, 180),
    "pink": (250, 120, 190),
    "white": (250, 250, 250),
    "black": (15, 15, 15),
}
# scene -> colours too close to its background to be seen on it
SCENES: dict[str, tuple[str, ...]] = {
    "green field": (),
    "blue sky": ("blue", "white"),
    "grey brick wall": (),
    "sandy desert": ("yellow", "orange"),
    "night sky": ("black", "blue", "purple"),
    "snowy ground": ("white",),
    "wooden floor": ("orange",),
    "ocean waves": ("blue",),
}
SHAPES = ("circle", "square", "triangle", "star")
DIRECTIONS = ("left", "right", "up", "down")
# Printed words (OCR targets): common, distinct from every colour/shape/scene/direction word.
WORDS = (
    "river", "apple", "house", "music", "water", "light", "money", "happy", "table", "train",
    "sugar", "pizza", "robot", "tiger", "horse", "lemon", "cloud", "piano", "dream", "bread",
    "chair", "plant", "smile", "zebra", "mouse", "radio", "magic", "candy", "storm", "honey",
)  # fmt: skip
# Spoken words (speech targets): short, frequent words a small ASR model has a chance with.
SPOKEN = (
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "zero", "hello", "yes", "no", "stop", "go", "okay", "please", "thank you", "good morning",
)  # fmt: skip
SOUNDS = ("a low hum", "a high beep", "white noise", "a rising chirp", "silence")
# A keyword every caption phrase of that sound contains (what tests look for).
SOUND_KEYWORDS = {
    "a low hum": "hum",
    "a high beep": "beep",
    "white noise": "noise",
    "a rising chirp": "chirp",
    "silence": "silen",
}
FACE_PHRASES = ("a woman in a space suit", "an astronaut", "a smiling astronaut", "the face of an astronaut")  # Eileen Collins
FACE_KEYWORDS = ("astronaut", "space suit")

# Crop of skimage.data.astronaut() around the face Haar finds at (177, 66, 95, 95): x0, y0, x1, y1
FACE_CROP = (139, 28, 310, 206)
