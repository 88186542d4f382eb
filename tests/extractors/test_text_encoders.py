"""Text encoders: shapes, determinism, padding-free tokens, word tables, local GPT-2 loading."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from videxperts.errors import UserError
from videxperts.extractors.text import TextEncoderError, build_text_encoder, describe_text_encoder
from videxperts.extractors.text.base import sha256_of

CAPTIONS = ["a man is cooking pasta in a small kitchen", "dog", "", "the word river appears"]


# ----------------------------------------------------------------------------- minilm
@pytest.fixture(scope="module")
def minilm():
    return build_text_encoder("minilm")


def test_minilm_token_shapes_are_padding_free(minilm):
    toks = minilm.encode_tokens(CAPTIONS)
    ids = [minilm.tokenizer(c, add_special_tokens=False)["input_ids"] for c in CAPTIONS]
    assert [t.shape for t in toks] == [(len(i), 384) for i in ids]  # [CLS]/[SEP]/padding dropped
    assert toks[2].shape == (0, 384)
    assert all(t.dtype == np.float32 for t in toks)
    # batched with longer captions (so with padding) == alone (no padding)
    alone = minilm.encode_tokens([CAPTIONS[1]])[0]
    np.testing.assert_allclose(toks[1], alone, atol=1e-5)
    assert not np.allclose(toks[0][0], toks[0][1])


def test_minilm_deterministic_and_words_match_sentence_transformers(minilm):
    a = minilm.encode_tokens(CAPTIONS[:2])
    b = minilm.encode_tokens(CAPTIONS[:2])
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    words = ["river", "apple", "astronaut"]
    vecs = minilm.encode_words(words)
    assert vecs.shape == (3, 384) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    from sentence_transformers import SentenceTransformer

    ref = SentenceTransformer(str(minilm.model_dir), device="cpu").encode(words)
    np.testing.assert_allclose(vecs, ref, atol=1e-5)
    assert minilm.encode_words([]).shape == (0, 384)


def test_minilm_provenance_known_without_loading(minilm):
    prov = describe_text_encoder("minilm")
    assert prov == minilm.provenance()
    assert prov["dim"] == 384
    assert prov["weights"] == "sha256:" + sha256_of(minilm.model_dir / "model.safetensors")


# ----------------------------------------------------------------------------- wordvec
def _glove(tmp_path: Path) -> Path:
    p = tmp_path / "tiny.glove.txt"
    p.write_text("river 1 0 0\nApple 0 1 0\napple 9 9 9\ne 0 0 1\nmail 0 1 1\n")
    return p


def test_wordvec_glove_lookups_and_oov(tmp_path):
    enc = build_text_encoder("wordvec", path=str(_glove(tmp_path)))
    assert enc.dim == 3
    toks = enc.encode_tokens(["River, APPLE and zebra!", "zebra"])
    np.testing.assert_array_equal(toks[0], [[1, 0, 0], [0, 1, 0]])  # first 'apple' row wins, OOV dropped
    assert toks[1].shape == (0, 3)
    words = enc.encode_words(["river", "zebra", "e-mail"])
    np.testing.assert_array_equal(words, [[1, 0, 0], [0, 0, 0], [0, 0.5, 1]])
    assert enc.known("river") and not enc.known("zebra")
    assert describe_text_encoder("wordvec", path=str(_glove(tmp_path)))["dim"] == 3


def test_wordvec_word2vec_text_and_binary(tmp_path):
    txt = tmp_path / "w2v.txt"
    txt.write_text("2 2\nhello 0.5 -1\nworld 2 3\n")
    enc = build_text_encoder("wordvec", path=str(txt))
    np.testing.assert_array_equal(enc.encode_words(["world", "hello"]), [[2, 3], [0.5, -1]])
    binf = tmp_path / "w2v.bin"
    with open(binf, "wb") as f:
        f.write(b"2 2\n")
        for w, v in (("hello", (0.5, -1.0)), ("world", (2.0, 3.0))):
            f.write(w.encode() + b" " + struct.pack("<2f", *v) + b"\n")
    enc_b = build_text_encoder("wordvec", path=str(binf))
    np.testing.assert_array_equal(enc_b.encode_words(["world", "hello"]), [[2, 3], [0.5, -1]])
    assert enc_b.provenance()["weights"] == "sha256:" + sha256_of(binf)


def test_wordvec_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("VIDEXPERTS_WORDVEC", raising=False)
    with pytest.raises(TextEncoderError, match="no word-vector file configured"):
        build_text_encoder("wordvec")
    with pytest.raises(UserError, match="not found"):
        build_text_encoder("wordvec", path=str(tmp_path / "missing.txt"))
    bad = tmp_path / "bad.txt"
    bad.write_text("a 1 2\nb 1\n")
    with pytest.raises(TextEncoderError, match="expected 2 values"):
        build_text_encoder("wordvec", path=str(bad))
    with pytest.raises(TextEncoderError, match="unknown text encoder"):
        build_text_encoder("bert-huge")


# ----------------------------------------------------------------------------- gpt2
@pytest.fixture(scope="module")
def tiny_gpt2(tmp_path_factory) -> Path:
    """A 1-layer, 32-wide random GPT-2 with a word-level tokenizer trained on a few sentences."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2Model, PreTrainedTokenizerFast

    out = tmp_path_factory.mktemp("tiny-gpt2")
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(CAPTIONS + ["a cat sits on a mat", "river apple astronaut"],
                            trainers.WordLevelTrainer(special_tokens=["[UNK]", "[PAD]"]))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]")
    fast.save_pretrained(out)
    torch.manual_seed(0)
    GPT2Model(GPT2Config(n_layer=1, n_embd=32, n_head=2, n_positions=64, vocab_size=len(fast))).save_pretrained(out)
    return out


def test_gpt2_local_model_tokens_and_words(tiny_gpt2):
    enc = build_text_encoder("gpt2", model=str(tiny_gpt2))
    assert enc.dim == 32
    toks = enc.encode_tokens(CAPTIONS)
    assert [t.shape for t in toks] == [(9, 32), (1, 32), (0, 32), (4, 32)]
    assert all(t.dtype == np.float32 for t in toks)
    np.testing.assert_allclose(enc.encode_tokens([CAPTIONS[1]])[0], toks[1], atol=1e-5)  # padding-free
    again = build_text_encoder("gpt2", model=str(tiny_gpt2)).encode_tokens(CAPTIONS)
    for x, y in zip(toks, again, strict=True):
        np.testing.assert_array_equal(x, y)
    words = enc.encode_words(["river", "apple"])
    assert words.shape == (2, 32) and not np.allclose(words[0], words[1])
    prov = enc.provenance()
    assert prov == describe_text_encoder("gpt2", model=str(tiny_gpt2))
    assert prov["weights"] == "sha256:" + sha256_of(tiny_gpt2 / "model.safetensors")


def test_gpt2_without_weights_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="weights are not present"):
        build_text_encoder("gpt2")
    with pytest.raises(UserError, match="weights are not present"):
        build_text_encoder("gpt2", model=str(tmp_path))
    (tmp_path / "config.json").write_text('{"model_type": "gpt2", "n_embd": 32}')
    with pytest.raises(UserError, match="weights are not present"):
        build_text_encoder("gpt2", model=str(tmp_path))
