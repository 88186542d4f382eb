"""The ActivityNet dense-captioning evaluator (SPEC-BMHRL.md §3.2), on pycocoevalcap's scorers.

Why not call densevid_eval or pycocoevalcap's wrappers as they are: the PTB tokenizer wrapper writes
temporary files into site-packages (fails on a read-only install) and the METEOR wrapper starts a
Java process with no bound on how long it may hang and kills it in ``__del__``. Here both jars
(shipped inside the ``pycocoevalcap`` wheel) run through :mod:`subprocess` without a shell, with
temporary files in a temporary directory and a deadline; BLEU, ROUGE-L and CIDEr are
pycocoevalcap's own pure-Python scorers. The protocol:

1. for every reference video and each of its first ``max_proposals`` predictions, pair the
   prediction with **every** reference segment (of every reference file) whose tIoU >= threshold;
   a prediction that matches nothing is paired with a random 10-20 letter "garbage" reference
   (the original's RNG is unseeded; here it is seeded by default, ``garbage_seed=None`` restores
   the original's nondeterminism);
2. strip non-ASCII characters, PTB-tokenise (Stanford CoreNLP 3.4.1, lower-cased) and drop the
   punctuation tokens;
3. score each video's pairs as one corpus (CIDEr's IDF from that video's references only), give
   reference videos without predictions 0, average over videos; then average over thresholds.

Scores are fractions (0-1; CIDEr on its usual 0-10 scale), as the original returns them; the
papers print them x100. Without Java, METEOR is reported as unavailable (one line in ``notes``)
and tokenisation falls back to a Python approximation of the PTB rules.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import random
import re
import shutil
import string
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from videxperts.errors import UserError

DEFAULT_TIOUS = (0.3, 0.5, 0.7, 0.9)
METRICS = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr")
# The punctuation tokens pycocoevalcap's PTBTokenizer drops after tokenising.
PUNCTUATIONS = frozenset(
    ["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--", "...", ";"]
)
JAVA_TIMEOUT_S = 600.0


# ---------------------------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------------------------
def _load_json(obj: Any, what: str) -> Any:
    if isinstance(obj, (str, Path)):
        path = Path(obj)
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError(f"{what} file not found: {path}") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UserError(f"{what} file {path} is not readable JSON: {exc}") from None
    return obj


def _segment(ts: Any, what: str) -> tuple[float, float]:
    try:
        start, end = (float(ts[0]), float(ts[1]))
        if len(ts) != 2:
            raise ValueError
    except (TypeError, ValueError, IndexError):
        raise UserError(f"{what}: a timestamp must be [start, end] in seconds, got {ts!r}") from None
    if not (math.isfinite(start) and math.isfinite(end)):
        raise UserError(f"{what}: timestamp {ts!r} is not finite")
    return start, end


def load_predictions(predictions: Any, max_proposals: int = 1000) -> dict[str, list[dict]]:
    """An ActivityNet submission (``{"results": {vid: [{"sentence", "timestamp"}]}}``, or the bare
    ``results`` mapping, or a path to either) as ``{vid: [{"sentence", "timestamp"}]}``, each video
    cut to its first ``max_proposals`` predictions as the original does."""
    data = _load_json(predictions, "predictions")
    if isinstance(data, Mapping) and "results" in data:
        data = data["results"]
    if not isinstance(data, Mapping):
        raise UserError('predictions: expected {"results": {video_id: [{"sentence", "timestamp"}, ...]}}')
    out: dict[str, list[dict]] = {}
    for vid, preds in data.items():
        if not isinstance(preds, list):
            raise UserError(f"predictions[{vid!r}]: expected a list of {{sentence, timestamp}}")
        rows = []
        for i, p in enumerate(preds[:max_proposals]):
            where = f"predictions[{vid!r}][{i}]"
            if not isinstance(p, Mapping) or "sentence" not in p or "timestamp" not in p:
                raise UserError(f"{where}: expected {{'sentence': str, 'timestamp': [start, end]}}")
            rows.append({"sentence": str(p["sentence"]), "timestamp": _segment(p["timestamp"], where)})
        out[str(vid)] = rows
    return out


def load_references(references: Any) -> list[dict[str, dict]]:
    """One reference file or several (ActivityNet ``{vid: {"duration", "timestamps", "sentences"}}``,
    or paths), each as ``{vid: {"timestamps": [(s, e)], "sentences": [str]}}``."""
    if isinstance(references, (str, Path, Mapping)):
        references = [references]
    files = []
    for k, ref in enumerate(references):
        data = _load_json(ref, "references")
        if not isinstance(data, Mapping):
            raise UserError(f"references #{k}: expected {{video_id: {{timestamps, sentences}}}}")
        parsed = {}
        for vid, entry in data.items():
            where = f"references[{vid!r}]"
            if not isinstance(entry, Mapping) or "timestamps" not in entry or "sentences" not in entry:
                raise UserError(f"{where}: expected {{'timestamps': [[s, e], ...], 'sentences': [...]}}")
            stamps = [_segment(t, where) for t in entry["timestamps"]]
            sents = [str(s) for s in entry["sentences"]]
            if len(stamps) != len(sents):
                raise UserError(f"{where}: {len(stamps)} timestamps but {len(sents)} sentences")
            parsed[str(vid)] = {"timestamps": stamps, "sentences": sents}
        files.append(parsed)
    if not files:
        raise UserError("references: no reference file given")
    return files


def tiou(a: Sequence[float], b: Sequence[float]) -> float:
    """Temporal IoU as the original computes it (the union is capped by the summed lengths, so
    disjoint segments get 0, not a negative overlap)."""
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = min(max(a[1], b[1]) - min(a[0], b[0]), (b[1] - b[0]) + (a[1] - a[0]))
    return inter / (union + 1e-8)


def remove_nonascii(text: str) -> str:
    return "".join(ch for ch in text if ord(ch) < 128)


# ---------------------------------------------------------------------------------------------
# Java: PTB tokenizer and METEOR 1.5, both from the pycocoevalcap wheel
# ---------------------------------------------------------------------------------------------
def _package_dir() -> Path:
    try:
        import pycocoevalcap
    except ImportError:  # pragma: no cover - a hard dependency in setup.cfg
        raise UserError("pycocoevalcap is not installed: pip install pycocoevalcap==1.2") from None
    return Path(next(iter(pycocoevalcap.__path__)))


def find_java() -> str | None:
    return shutil.which("java")


def ptb_tokenize(sentences: Sequence[str], java: str | None, timeout_s: float = JAVA_TIMEOUT_S) -> list[str]:
    """Lower-cased PTB tokens joined by spaces, punctuation tokens dropped (pycocoevalcap's rules)."""
    out = [""] * len(sentences)
    todo = [i for i, s in enumerate(sentences) if s.strip()]
    if not todo:
        return out
    if java is None:
        lines = [" ".join(_py_ptb(sentences[i])) for i in todo]
    else:
        # one sentence per line: any character the JVM could read as a line break becomes a space
        lines = _java_ptb([_LINE_BREAKS.sub(" ", sentences[i]) for i in todo], java, timeout_s)
    for i, line in zip(todo, lines, strict=True):
        out[i] = " ".join(w for w in line.rstrip().split(" ") if w and w not in PUNCTUATIONS)
    return out


_LINE_BREAKS = re.compile(r"[\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")


def _java_ptb(lines: list[str], java: str, timeout_s: float) -> list[str]:
    jar = _package_dir() / "tokenizer" / "stanford-corenlp-3.4.1.jar"
    with tempfile.TemporaryDirectory(prefix="videxperts-ptb-") as tmp:
        src = Path(tmp) / "sentences.txt"
        src.write_text("\n".join(lines), encoding="utf-8")
        cmd = [java, "-cp", str(jar), "edu.stanford.nlp.process.PTBTokenizer", "-preserveLines", "-lowerCase", str(src)]
        try:
            done = subprocess.run(cmd, cwd=tmp, capture_output=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired:
            raise UserError(f"PTB tokenizer (java) did not finish within {timeout_s:.0f} s") from None
    if done.returncode != 0:
        msg = done.stderr.decode(errors="replace").strip().splitlines()
        raise UserError(f"PTB tokenizer (java) failed: {msg[-1] if msg else f'exit {done.returncode}'}")
    got = done.stdout.decode(errors="replace").split("\n")
    if got and got[-1] == "":
        got.pop()
    if len(got) != len(lines):  # never pair a sentence with another one's tokens
        raise UserError(f"PTB tokenizer returned {len(got)} lines for {len(lines)} sentences")
    return got


_PY_PTB = re.compile(r"\.\.\.|--|``|''|n't\b|'(?:s|re|ve|ll|d|m)\b|\w+(?:[-.]\w+)*|[^\w\s]", re.I)


_PY_BRACKETS = {"(": "-lrb-", ")": "-rrb-", "{": "-lcb-", "}": "-rcb-", "[": "-lsb-", "]": "-rsb-"}


def _py_ptb(sentence: str) -> list[str]:
    """An approximation of the PTB rules for machines without Java: lower-case, split off
    punctuation and clitics ("n't", "'s"), brackets as the lower-cased PTB escapes (which, as in
    the original, survive the punctuation filter)."""
    return [_PY_BRACKETS.get(t, t) for t in _PY_PTB.findall(sentence.lower())]


class MeteorProcess:
    """METEOR 1.5 (``-l en -norm``, the jar pycocoevalcap ships) as one Java process for a whole
    evaluation, spoken to over stdin/stdout with pycocoevalcap's SCORE/EVAL protocol. A watchdog
    kills the process at ``timeout_s`` so a hung JVM ends the evaluation with one line instead of
    blocking it; :meth:`close` always reaps the process."""

    def __init__(self, java: str, timeout_s: float = JAVA_TIMEOUT_S):
        pkg = _package_dir() / "meteor"
        cmd = [java, "-jar", "-Xmx2G", str(pkg / "meteor-1.5.jar"), "-", "-", "-stdio", "-l", "en", "-norm"]
        self._proc = subprocess.Popen(
            cmd, cwd=str(pkg), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        self._timed_out = False
        self._timer = threading.Timer(timeout_s, self._expire)
        self._timer.daemon = True
        self._timer.start()
        self._timeout_s = timeout_s

    def _expire(self) -> None:
        self._timed_out = True
        self._proc.kill()

    def _ask(self, line: str) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write((line + "\n").encode())
        self._proc.stdin.flush()

    def _read(self) -> str:
        assert self._proc.stdout is not None
        got = self._proc.stdout.readline().decode().strip()
        if not got:
            if self._timed_out:
                raise UserError(f"METEOR (java) did not finish within {self._timeout_s:.0f} s")
            raise UserError(f"METEOR (java) stopped unexpectedly (exit {self._proc.poll()})")
        return got

    def score(self, pairs: Sequence[tuple[str, list[str]]]) -> float:
        """Corpus METEOR over ``(hypothesis, references)`` pairs (statistics summed, as EVAL does)."""
        stats = []
        try:
            for hyp, refs in pairs:
                hyp = hyp.replace("|||", "").replace("  ", " ")
                self._ask(" ||| ".join(("SCORE", " ||| ".join(refs), hyp)))
                stats.append(self._read())
            self._ask("EVAL ||| " + " ||| ".join(stats))
            for _ in stats:
                self._read()
            return float(self._read())
        except (BrokenPipeError, OSError):
            raise UserError(f"METEOR (java) stopped unexpectedly (exit {self._proc.poll()})") from None

    def close(self) -> None:
        self._timer.cancel()
        with contextlib.suppress(OSError):
            if self._proc.stdin:
                self._proc.stdin.close()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        for stream in (self._proc.stdout,):
            if stream:
                stream.close()

    def __enter__(self) -> MeteorProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------
# the protocol
# ---------------------------------------------------------------------------------------------
def _garbage(rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(10, 20)))


def pair_for_threshold(
    preds: Mapping[str, list[dict]], refs: list[dict[str, dict]], vids: Iterable[str], thr: float, rng: random.Random
) -> dict[str, list[tuple[str, str]]]:
    """``{vid: [(prediction sentence, reference sentence)]}`` under one tIoU threshold."""
    out: dict[str, list[tuple[str, str]]] = {}
    for vid in vids:
        pairs: list[tuple[str, str]] = []
        for p in preds.get(vid, []):
            added = False
            for ref in refs:
                if vid not in ref:
                    continue
                for stamp, sent in zip(ref[vid]["timestamps"], ref[vid]["sentences"], strict=True):
                    if tiou(p["timestamp"], stamp) >= thr:
                        pairs.append((p["sentence"], sent))
                        added = True
            if not added:
                pairs.append((p["sentence"], _garbage(rng)))
        out[vid] = pairs
    return out


def detection_scores(
    preds: Mapping[str, list[dict]], refs: list[dict[str, dict]], vids: Sequence[str], thr: float
) -> tuple[float, float]:
    """Proposal precision and recall at ``thr`` (strictly greater, as the original), best over
    reference files, averaged over reference videos."""
    precision, recall = [], []
    for vid in vids:
        best_p = best_r = 0.0
        for ref in refs:
            if vid not in ref:
                continue
            stamps = ref[vid]["timestamps"]
            covered_ref, covered_pred = set(), set()
            for i, p in enumerate(preds.get(vid, [])):
                for j, stamp in enumerate(stamps):
                    if tiou(p["timestamp"], stamp) > thr:
                        covered_ref.add(j)
                        covered_pred.add(i)
            if preds.get(vid):
                best_p = max(best_p, len(covered_pred) / len(preds[vid]))
            if stamps:
                best_r = max(best_r, len(covered_ref) / len(stamps))
        precision.append(best_p)
        recall.append(best_r)
    n = max(1, len(vids))
    return sum(precision) / n, sum(recall) / n


def _score_video(pairs: list[tuple[str, str]], meteor: MeteorProcess | None) -> dict[str, float]:
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    gts = {i: [ref] for i, (_, ref) in enumerate(pairs)}
    res = {i: [hyp] for i, (hyp, _) in enumerate(pairs)}
    with contextlib.redirect_stdout(io.StringIO()):
        bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    out = {f"Bleu_{n + 1}": float(bleu[n]) for n in range(4)}
    out["ROUGE_L"] = float(Rouge().compute_score(gts, res)[0])
    out["CIDEr"] = float(Cider().compute_score(gts, res)[0])
    if meteor is not None:
        out["METEOR"] = meteor.score([(hyp, [ref]) for hyp, ref in pairs])
    return out


def evaluate_dense_captions(
    predictions: Any,
    references: Any,
    tious: Sequence[float] = DEFAULT_TIOUS,
    max_proposals: int = 1000,
    *,
    garbage_seed: int | None = 0,
    use_java: bool = True,
    timeout_s: float = JAVA_TIMEOUT_S,
) -> dict[str, Any]:
    """Score dense captions with the ActivityNet protocol.

    ``predictions``: an ActivityNet submission (dict or path); ``references``: one or more
    ActivityNet ground-truth files (dicts or paths; use the ``*_no_missings`` files for the
    published numbers). Returns ``Bleu_1..Bleu_4, METEOR, ROUGE_L, CIDEr`` (means over ``tious``;
    METEOR is ``None`` when Java is unavailable), ``Precision``/``Recall`` of the proposals,
    ``per_tiou`` (the same per threshold), ``videos``/``predictions``/``references`` counts and
    ``notes`` (one line per degraded part, e.g. no Java)."""
    if not tious:
        raise UserError("evaluate_dense_captions: tious must name at least one threshold")
    if max_proposals < 1:
        raise UserError(f"evaluate_dense_captions: max_proposals must be >= 1, got {max_proposals}")
    preds = load_predictions(predictions, max_proposals)
    refs = load_references(references)
    vids = sorted({vid for ref in refs for vid in ref})
    rng = random.Random(garbage_seed) if garbage_seed is not None else random.Random()

    notes: list[str] = []
    java = find_java() if use_java else None
    if java is None:
        why = "java not found on PATH (make install adds it)" if use_java else "java disabled"
        notes.append(f"METEOR unavailable: {why}; PTB tokenisation approximated in Python")

    by_thr = {thr: pair_for_threshold(preds, refs, vids, thr, rng) for thr in tious}
    # Tokenise every distinct sentence once (the tokenizer works line by line, so this equals
    # the original's separate calls for predictions and references).
    raw = sorted({s for pairs in by_thr.values() for vp in pairs.values() for p in vp for s in p})
    toks = dict(zip(raw, ptb_tokenize([remove_nonascii(s) for s in raw], java, timeout_s), strict=True))

    meteor = None
    if java is not None:
        try:
            meteor = MeteorProcess(java, timeout_s)
        except OSError as exc:
            notes.append(f"METEOR unavailable: java could not start ({exc.strerror or exc})")
    per_tiou: dict[str, dict[str, float | None]] = {}
    try:
        for thr, pairs in by_thr.items():
            per_video = []
            for vid in vids:
                tok_pairs = [(toks[h], toks[r]) for h, r in pairs[vid]]
                if tok_pairs:
                    per_video.append(_score_video(tok_pairs, meteor))
                else:
                    per_video.append(dict.fromkeys(METRICS, 0.0))
            row: dict[str, float | None] = {}
            for m in METRICS:
                if m == "METEOR" and meteor is None:
                    row[m] = None
                else:
                    row[m] = float(np.mean([v[m] for v in per_video])) if per_video else 0.0
            row["Precision"], row["Recall"] = detection_scores(preds, refs, vids, thr)
            per_tiou[f"{thr:g}"] = row
    finally:
        if meteor is not None:
            meteor.close()

    result: dict[str, Any] = {}
    for m in (*METRICS, "Precision", "Recall"):
        vals = [row[m] for row in per_tiou.values()]
        result[m] = None if any(v is None for v in vals) else float(np.mean(vals))
    result["per_tiou"] = per_tiou
    result["tious"] = [float(t) for t in tious]
    result["videos"] = len(vids)
    result["predictions"] = sum(len(preds.get(v, [])) for v in vids)
    result["references"] = sum(len(ref[v]["sentences"]) for ref in refs for v in ref)
    result["notes"] = notes
    return result
