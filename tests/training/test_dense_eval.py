"""The ActivityNet dense-captioning evaluator on a hand-made two-video case.

Expected scores come from plain re-computations below (coco BLEU, ROUGE-L, CIDEr-D and the
METEOR 1.5 formula written out from their definitions), never from the evaluator itself.

Case (seconds): video A has overlapping references r1 [0,10] and r2 [5,15] (tIoU 1/3) and two
predictions that repeat them word for word; video B has r3 [0,4], r4 [4,8], one prediction on r4
with one word changed and one prediction [12,16] that matches nothing (paired with a garbage
string); video C has a reference but no prediction (scores 0); video X is predicted but has no
reference (ignored). At tIoU 0.3 each A prediction pairs with both references (4 pairs); at 0.5
only with its own.
"""

from __future__ import annotations

import json
import math
import shutil
from collections import Counter

import pytest

from videxperts.errors import UserError
from videxperts.training.captioning.dense_eval import evaluate_dense_captions, ptb_tokenize, tiou

REFS = {
    "vA": {"duration": 20.0, "timestamps": [[0, 10], [5, 15]], "sentences": ["A man runs fast.", "The dog jumps high."]},
    "vB": {"duration": 16.0, "timestamps": [[0, 4], [4, 8]], "sentences": ["A red circle moves left.", "A blue square appears."]},
    "vC": {"duration": 9.0, "timestamps": [[1, 3]], "sentences": ["Nobody predicted this."]},
}
PREDS = {
    "version": "VERSION 1.0",
    "results": {
        "vA": [{"sentence": "a man runs fast", "timestamp": [0, 10]}, {"sentence": "the dog jumps high", "timestamp": [5, 15]}],
        "vB": [
            {"sentence": "A blue square slides.", "timestamp": [4, 8]},
            {"sentence": "a green triangle spins", "timestamp": [12, 16]},
        ],
        "vX": [{"sentence": "no reference for this video", "timestamp": [0, 1]}],
    },
}
GARBAGE = "qzxjvkwqpy"  # stands for the evaluator's random 10-20 letter string: one unmatched token
MAN, DOG = "a man runs fast", "the dog jumps high"
BLUE_H, BLUE_R, GREEN = "a blue square slides", "a blue square appears", "a green triangle spins"
# (hypothesis, reference) pairs per video after PTB tokenisation, per threshold.
PAIRS = {
    0.3: {"vA": [(MAN, MAN), (MAN, DOG), (DOG, MAN), (DOG, DOG)], "vB": [(BLUE_H, BLUE_R), (GREEN, GARBAGE)], "vC": []},
    0.5: {"vA": [(MAN, MAN), (DOG, DOG)], "vB": [(BLUE_H, BLUE_R), (GREEN, GARBAGE)], "vC": []},
}
FUNCTION_WORDS = {"a", "the"}  # the only words here on METEOR 1.5's English function-word list


def _ngrams(words: list[str], n: int) -> Counter:
    return Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))


def plain_bleu(pairs: list[tuple[str, str]]) -> list[float]:
    """coco BLEU: corpus-level clipped n-gram precision, closest reference length, its tiny/small terms."""
    tiny, small = 1e-15, 1e-9
    correct, guess = [0] * 4, [0] * 4
    testlen = reflen = 0
    for h, r in pairs:
        hw, rw = h.split(), r.split()
        testlen, reflen = testlen + len(hw), reflen + len(rw)
        for n in range(1, 5):
            hc, rc = _ngrams(hw, n), _ngrams(rw, n)
            guess[n - 1] += max(0, len(hw) - n + 1)
            correct[n - 1] += sum(min(c, rc[g]) for g, c in hc.items())
    out, prod = [], 1.0
    for k in range(4):
        prod *= (correct[k] + tiny) / (guess[k] + small)
        score = prod ** (1 / (k + 1))
        ratio = (testlen + tiny) / (reflen + small)
        if ratio < 1:
            score *= math.exp(1 - 1 / ratio)
        out.append(score)
    return out


def _lcs(a: list[str], b: list[str]) -> int:
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            table[i + 1][j + 1] = table[i][j] + 1 if x == y else max(table[i][j + 1], table[i + 1][j])
    return table[-1][-1]


def plain_rouge(pairs: list[tuple[str, str]]) -> float:
    beta, scores = 1.2, []
    for h, r in pairs:
        lcs = _lcs(h.split(), r.split())
        p, rec = lcs / len(h.split()), lcs / len(r.split())
        scores.append((1 + beta**2) * p * rec / (rec + beta**2 * p) if p and rec else 0.0)
    return sum(scores) / len(scores)


def plain_cider(pairs: list[tuple[str, str]]) -> float:
    """CIDEr-D with the IDF of this video's references only, sigma 6, clipping, x10."""
    refs = [r.split() for _, r in pairs]
    df = Counter(g for r in refs for n in range(1, 5) for g in set(_ngrams(r, n)))
    log_n = math.log(len(refs))

    def vec(words: list[str], n: int) -> dict:
        return {g: c * (log_n - math.log(max(1.0, df[g]))) for g, c in _ngrams(words, n).items()}

    scores = []
    for h, r in pairs:
        hw, rw = h.split(), r.split()
        sims = []
        for n in range(1, 5):
            vh, vr = vec(hw, n), vec(rw, n)
            nh, nr = math.sqrt(sum(v * v for v in vh.values())), math.sqrt(sum(v * v for v in vr.values()))
            val = sum(min(v, vr.get(g, 0.0)) * vr.get(g, 0.0) for g, v in vh.items())
            sim = val / (nh * nr) if nh and nr else 0.0
            sims.append(sim * math.exp(-((len(hw) - len(rw)) ** 2) / (2 * 6.0**2)))
        scores.append(10 * sum(sims) / 4)
    return sum(scores) / len(scores)


def plain_meteor(pairs: list[tuple[str, str]]) -> float:
    """METEOR 1.5 English (alpha 0.85, beta 0.2, gamma 0.6, delta 0.75) with exact matches only
    (the sentences here have no stem, synonym or paraphrase matches), statistics summed over the
    video's pairs; a pair whose words all match in one chunk adds no fragmentation."""
    alpha, beta, gamma, delta = 0.85, 0.2, 0.6, 0.75
    t_len = r_len = t_fn = r_fn = m_content = m_fn = chunks = matches = 0
    for h, r in pairs:
        hw, rw = h.split(), r.split()
        common = Counter(hw) & Counter(rw)
        n_match = sum(common.values())
        t_len, r_len = t_len + len(hw), r_len + len(rw)
        t_fn += sum(w in FUNCTION_WORDS for w in hw)
        r_fn += sum(w in FUNCTION_WORDS for w in rw)
        m_fn += sum(c for w, c in common.items() if w in FUNCTION_WORDS)
        m_content += sum(c for w, c in common.items() if w not in FUNCTION_WORDS)
        matches += n_match
        # matched words here are always one contiguous run in the same order
        identical = n_match == len(hw) == len(rw)
        chunks += 0 if identical or n_match == 0 else 1
    p = (delta * m_content + (1 - delta) * m_fn) / (delta * (t_len - t_fn) + (1 - delta) * t_fn)
    r = (delta * m_content + (1 - delta) * m_fn) / (delta * (r_len - r_fn) + (1 - delta) * r_fn)
    if p == 0 or r == 0:
        return 0.0
    fmean = p * r / (alpha * p + (1 - alpha) * r)
    return fmean * (1 - gamma * (chunks / matches) ** beta)


def expected(thr: float, meteor: bool = True) -> dict[str, float]:
    per_video = []
    for vid in ("vA", "vB", "vC"):
        pairs = PAIRS[thr][vid]
        if not pairs:
            per_video.append({"Bleu_1": 0, "Bleu_2": 0, "Bleu_3": 0, "Bleu_4": 0, "ROUGE_L": 0, "CIDEr": 0, "METEOR": 0})
            continue
        row = {f"Bleu_{n + 1}": b for n, b in enumerate(plain_bleu(pairs))}
        row |= {"ROUGE_L": plain_rouge(pairs), "CIDEr": plain_cider(pairs), "METEOR": plain_meteor(pairs)}
        per_video.append(row)
    return {m: sum(v[m] for v in per_video) / 3 for m in per_video[0] if meteor or m != "METEOR"}


def test_plain_computations_match_hand_values():
    """The reference implementations above agree with numbers worked out by hand."""
    assert plain_bleu(PAIRS[0.3]["vA"]) == pytest.approx([0.5] * 4, abs=1e-9)  # 8/16, 6/12, 4/8, 2/4
    assert plain_bleu(PAIRS[0.5]["vB"])[:3] == pytest.approx([3 / 8, (3 / 8 * 2 / 6) ** 0.5, (3 / 8 * 2 / 6 * 1 / 4) ** (1 / 3)])
    assert plain_rouge(PAIRS[0.5]["vB"]) == pytest.approx(0.375)  # LCS 3 of 4 on both sides, then 0
    assert plain_cider(PAIRS[0.3]["vA"]) == pytest.approx(5.0)  # exact pairs score 10, crossed pairs 0
    assert plain_cider(PAIRS[0.5]["vB"]) == pytest.approx(10 * (3 / 4 + 2 / 3 + 1 / 2 + 0) / 4 / 2)
    assert plain_meteor(PAIRS[0.3]["vA"]) == pytest.approx(0.5)  # P = R = 1/2, no fragmentation
    assert plain_meteor(PAIRS[0.5]["vA"]) == pytest.approx(1.0)


@pytest.fixture(scope="module")
def with_java():
    if shutil.which("java") is None:
        pytest.skip("no java on PATH: the METEOR and PTB parts need it (make install adds it)")
    return evaluate_dense_captions(PREDS, REFS, tious=(0.3, 0.5))


def test_two_video_case_with_java(with_java):
    res = with_java
    assert res["notes"] == []
    assert (res["videos"], res["predictions"], res["references"]) == (3, 4, 5)
    for thr in (0.3, 0.5):
        want = expected(thr)
        got = res["per_tiou"][f"{thr:g}"]
        for m, v in want.items():
            assert got[m] == pytest.approx(v, rel=1e-6, abs=1e-9), (thr, m)
        # proposals: A 2/2 covered, B 1/2 (both directions), C nothing
        assert got["Precision"] == pytest.approx(0.5) and got["Recall"] == pytest.approx(0.5)
    for m in ("Bleu_4", "METEOR", "CIDEr"):
        assert res[m] == pytest.approx((res["per_tiou"]["0.3"][m] + res["per_tiou"]["0.5"][m]) / 2)


def test_ptb_tokenisation_rules():
    """Lower-cased, punctuation tokens dropped, clitics split; Java and the fallback agree here."""
    sents = ["A man's dog runs, fast!", "", "The (red) circle -- moves...", "two\rlines"]
    # brackets become lower-cased PTB escapes that the (case-sensitive) filter keeps, as in coco;
    # a stray line break never shifts the sentences
    want = ["a man 's dog runs fast", "", "the -lrb- red -rrb- circle moves", "two lines"]
    assert ptb_tokenize(sents, None) == want
    if shutil.which("java"):
        assert ptb_tokenize(sents, shutil.which("java")) == want


def test_without_java_reports_one_line_and_scores_the_rest(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    res = evaluate_dense_captions(PREDS, REFS, tious=(0.5,))
    assert res["METEOR"] is None and len(res["notes"]) == 1 and "METEOR unavailable" in res["notes"][0]
    for m, v in expected(0.5, meteor=False).items():
        assert res[m] == pytest.approx(v, rel=1e-6, abs=1e-9), m


def test_edge_cases():
    # a video with no predictions scores 0 and still counts in the average
    only_a = {"results": {"vA": PREDS["results"]["vA"]}}
    res = evaluate_dense_captions(only_a, REFS, tious=(0.5,), use_java=False)
    assert res["Bleu_1"] == pytest.approx(1 / 3, rel=1e-6) and res["CIDEr"] == pytest.approx(10 / 3)
    # a prediction that matches nothing is scored against garbage: everything ~0
    miss = {"results": {"vC": [{"sentence": "nobody predicted this", "timestamp": [6, 8]}]}}
    res = evaluate_dense_captions(miss, {"vC": REFS["vC"]}, tious=(0.5,), use_java=False)
    assert res["Bleu_1"] < 1e-6 and res["ROUGE_L"] == 0 and res["CIDEr"] == 0 and res["Recall"] == 0
    # seeded garbage: deterministic
    again = evaluate_dense_captions(miss, {"vC": REFS["vC"]}, tious=(0.5,), use_java=False)
    assert again == res
    # proposals beyond max_proposals are dropped before pairing
    res = evaluate_dense_captions(PREDS, REFS, tious=(0.5,), max_proposals=1, use_java=False)
    assert res["predictions"] == 2 and res["per_tiou"]["0.5"]["Precision"] == pytest.approx((1 + 1 + 0) / 3)
    assert res["Recall"] == pytest.approx((1 / 2 + 1 / 2 + 0) / 3)


def test_tiou_and_bad_input():
    assert tiou((0, 10), (5, 15)) == pytest.approx(1 / 3)
    assert tiou((0, 4), (4, 8)) == 0 and tiou((0, 4), (10, 12)) == 0
    assert tiou((2, 6), (2, 6)) == pytest.approx(1.0)
    with pytest.raises(UserError, match=r"predictions\['vA'\]\[0\]"):
        evaluate_dense_captions({"results": {"vA": [{"sentence": "x"}]}}, REFS, use_java=False)
    with pytest.raises(UserError, match=r"references\['vA'\]: 2 timestamps but 1 sentences"):
        evaluate_dense_captions(PREDS, {"vA": {"timestamps": [[0, 1], [1, 2]], "sentences": ["x"]}}, use_java=False)
    with pytest.raises(UserError, match="references file not found"):
        evaluate_dense_captions(PREDS, "/nonexistent/val_1.json", use_java=False)


def test_evaluate_command_scores_a_submission(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from videxperts.pipelines.cli import cli

    (tmp_path / "preds.json").write_text(json.dumps(PREDS))
    (tmp_path / "val_1.json").write_text(json.dumps(REFS))
    monkeypatch.setenv("PATH", str(tmp_path))  # no java: the one-line note, the rest scored
    args = ["evaluate", "--predictions", str(tmp_path / "preds.json"), "--references", str(tmp_path / "val_1.json"),
            "--tious", "0.5"]  # fmt: skip
    res = CliRunner().invoke(cli, [*args, "--json"], catch_exceptions=False)
    assert res.exit_code == 0
    doc = json.loads(res.stdout)
    assert doc["Bleu_1"] == pytest.approx(expected(0.5, meteor=False)["Bleu_1"]) and doc["METEOR"] is None
    res = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert "METEOR    unavailable" in res.stdout and res.stderr.count("\n") == 1 and "java not found" in res.stderr
    res = CliRunner().invoke(cli, ["evaluate", "--predictions", str(tmp_path / "preds.json")])
    assert res.exit_code != 0 and "needs at least one --references" in (res.output + str(res.exception))


def test_deadline_and_unseeded_garbage():
    """A Java step past its deadline ends with one line; the original's unseeded garbage still scores 0."""
    if shutil.which("java"):
        with pytest.raises(UserError, match=r"\(java\) did not finish within") as err:
            evaluate_dense_captions(PREDS, REFS, tious=(0.5,), timeout_s=0.001)
        assert "\n" not in str(err.value)
    miss = {"results": {"vC": [{"sentence": "nobody predicted this", "timestamp": [6, 8]}]}}
    res = evaluate_dense_captions(miss, {"vC": REFS["vC"]}, tious=(0.5,), use_java=False, garbage_seed=None)
    assert res["ROUGE_L"] == 0 and res["CIDEr"] == 0 and res["Bleu_1"] < 1e-6
