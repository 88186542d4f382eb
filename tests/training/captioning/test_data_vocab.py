"""Segment crops, padding and masks from a real store; the vocabulary (specials, order, JSON); word vectors."""

from __future__ import annotations

import numpy as np
import pytest

from tests.training.captioning.fixtures import make_dataset, tiny_cfg
from videxperts.errors import UserError
from videxperts.training.captioning.data import crop, load_segments, read_segments
from videxperts.training.captioning.vocab import SPECIALS, Vocabulary, tokenize
from videxperts.training.captioning.wordvec import read_vectors, seeded_vectors


def test_crop_index_rules():
    rows = np.arange(10, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    assert crop(rows, 2.0, 6.0, 10.0, 3)[:, 0].tolist() == [2, 3, 4, 5]  # floor(10·2/10) .. floor(10·6/10)
    assert crop(rows, 2.05, 2.09, 10.0, 3)[:, 0].tolist() == [2]  # equal indices: one step
    assert crop(rows, 10.0, 10.0, 10.0, 3)[:, 0].tolist() == [9]  # at the very end: the last step
    assert crop(rows, 3.33, 6.66, 10.0, 3)[:, 0].tolist() == [3, 4, 5]
    assert crop(np.zeros((0, 3), np.float32), 1, 2, 10, 3).tolist() == [[0, 0, 0]]  # missing modality
    assert crop(rows, 11.0, 12.0, 10.0, 3).tolist() == [[0, 0, 0]]  # empty crop


def test_vocabulary_specials_order_and_json(tmp_path):
    vocab = Vocabulary.build(["A dog runs.", "a cat runs", "The dog's ball"])
    assert tuple(vocab.itos[:4]) == SPECIALS == ("<unk>", "<blank>", "<s>", "</s>")
    assert vocab.itos[4:7] == ["a", "dog", "runs"]  # most frequent first, ties alphabetical
    assert vocab.encode("a bird runs") == [2, vocab.stoi["a"], 0, vocab.stoi["runs"], 3]
    assert tokenize("The dog's ball.") == ["the", "dog", "'s", "ball", "."]
    path = vocab.save(tmp_path / "vocab.json")
    assert path.read_text().startswith("{") and Vocabulary.load(path).itos == vocab.itos
    (tmp_path / "bad.json").write_text('{"itos": ["a"]}')
    with pytest.raises(UserError, match="first four tokens"):
        Vocabulary.load(tmp_path / "bad.json")


def test_word_vectors_from_a_text_file_and_seeded(tmp_path):
    itos = [*SPECIALS, "dog", "cat", "zebra"]
    f = tmp_path / "vec.txt"
    f.write_text("3 2\ndog 0.5 -1\ncat 1 2\nbird 3 3\ndog 9 9\n")  # word2vec header; first 'dog' wins
    table, found = read_vectors(f, itos, 2)
    assert found == 2
    assert table[4].tolist() == [0.5, -1.0] and table[5].tolist() == [1.0, 2.0]
    assert not table[:4].any() and not table[6].any()  # specials and OOV: zero
    f.write_text("dog 1 2 3\n")
    with pytest.raises(UserError, match="line 1: vector for 'dog' has 3 dimensions, expected 2"):
        read_vectors(f, itos, 2)
    s1, s2 = seeded_vectors(itos, 4, 0), seeded_vectors(["zebra", *itos], 4, 0)
    assert not s1[:4].any() and np.array_equal(s1[6], s2[7])  # a word's vector ignores the others


def test_segments_from_the_store_are_cropped_padded_and_masked(tmp_path):
    from videxperts.storage.reader import StoreReader
    from videxperts.training.captioning.config import parse_config
    from videxperts.training.captioning.vocab import vocabulary_for

    data, url = make_dataset(tmp_path, videos=4)
    cfg = parse_config(tiny_cfg(data), "<t>")
    vocab = vocabulary_for(data)
    assert cfg.model.vocab_size == len(vocab)
    segs = read_segments(str(data))
    reader = StoreReader(url)
    split = load_segments(reader, cfg, ["v000", "v001", "nope"], segs, vocab)
    assert len(split) == 2 + 3
    x, mask = reader.load_expert("i3d", ["v001"], mode="seq")
    rows = x[0][mask[0]]
    dur, (cap, s, e) = segs["v001"]["duration"], segs["v001"]["segments"][1]
    lo, hi = int(len(rows) * s / dur), int(len(rows) * e / dur)
    assert np.array_equal(split.video[3], rows[lo:hi])
    assert split.captions[3] == cap and split.tokens[3][0] == 2 and split.tokens[3][-1] == 3
    b = split.batch([0, 3])
    length = b["v"].shape[1]
    assert b["v_rows"].sum(1).tolist() == [len(split.video[0]), len(split.video[3])]
    short = int(np.argmin([len(split.video[0]), len(split.video[3])]))
    assert (b["v"][short, ~b["v_rows"][short]] == 1.0).all()  # pad value 1 (rgb 1 + flow 0)
    assert (b["a"][~b["a_rows"]] == 1.0).all()
    assert b["tokens"].shape[0] == 2 and length == max(len(split.video[0]), len(split.video[3]))
