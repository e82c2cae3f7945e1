"""The study's findings: one row per claim of the paper, verdicts computed from run folders.

Nothing here is typed in except the claims themselves and the paper's numbers
(from :mod:`panns_core.paper`). For each claim the runs that test it are found by
their ``config.json`` (not by their names), scored from ``statistics.jsonl`` and
compared with one stated rule:

* **Score of a run** (the same rule as the tables): the eval-split mAP at the
  iteration with the best validation mAP (ties: earliest), or the last eval
  when no validation split was logged. Runs compared with each other are scored
  on the **same budget**: only evaluations at iterations <= the shortest run's
  last iteration count, so a longer-trained reference does not win by training longer.
* **Spread** (the noise a difference must beat): the sample standard deviation
  (ddof 1) of the scores of the reference system trained with different seeds
  (runs whose settings equal the reference's except ``seed``), when the profile
  has at least two; otherwise the standard deviation of the reference's last
  three eval mAPs (curve jitter), and the rule says so.
* **Verdict**: a claim ``A < B < C`` *holds* when every step up the chain beats
  the spread (``score(B) - score(A) > spread``); it *does not hold* when a run of
  every element exists and some step does not; it is *not measured at this
  scale* when the runs it needs are not in the profile.

**Released checkpoints** (the ``released`` profile): a claim that no trained run
tests is judged from the re-scored released checkpoints in
``<run_root>/released/<model>.json`` when they test it (deeper CNNs, MobileNets'
trade-off, Wavegram-Logmel best, sample rate, embedding size), with its own
spread: twice the standard error of the paired per-class AP differences
(:data:`RELEASED_RULE`); the row names the eval set's size and SHA-256. Claims
that no released checkpoint tests (sampling, mixup, data amount, hop size, mel
bins: those systems were never released) stay *not measured*, naming what is missing.

Transfer claims read ``<run_root>/transfer/<task>/results.csv`` (one row per
strategy x shots x fold x seed): the spread there is the larger of the two
strategies' seed-to-seed standard deviations at that number of shots.

    python -m panns_core.study.findings runs/default          # writes runs/default/findings.json, prints the table
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import re
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np
import pandas as pd

from panns_core import paper
from panns_core.fsutil import write_text

HOLDS, FAILS, NOT_MEASURED = "holds", "does not hold", "not measured at this scale"
VERDICTS = (HOLDS, FAILS, NOT_MEASURED)
JITTER_EVALUATIONS = 3
"""Fallback spread: std of the reference's last this many eval mAPs."""

RULE = ("a claim 'A < B' holds when score(B) - score(A) > spread, scores compared at the same "
        "iteration budget; score = eval mAP at the best-validation iteration")

_VARIANT_SUFFIX = re.compile(r"_(emb\d+|16k|8k|mel\d+|mixup_time_domain|no_specaug)$")
AUDIO_KEYS = ("sample_rate", "window_size", "hop_size", "mel_bins", "fmin", "fmax")
RECIPE_KEYS = ("batch_size", "learning_rate", "mixup_alpha", "spec_augment_time_width", "warmup_iterations",
               "precision")
RECIPE_DEFAULTS = {"mixup_alpha": 1.0, "spec_augment_time_width": None, "warmup_iterations": 0,
                   "precision": "fp32"}


# ---------------------------------------------------------------------------- runs and settings


@dataclass
class RunRecord:
    """One run folder: name, config, its evaluations (one dict per statistics line)."""

    name: str
    config: dict
    stats: list
    setting: dict = field(default_factory=dict)

    @property
    def last_iteration(self) -> int:
        return max(int(s["iteration"]) for s in self.stats)

    def score(self, budget: Optional[int] = None) -> Optional[tuple]:
        """(eval mAP, iteration) chosen by the best validation mAP up to ``budget``; None without evals."""
        budget = self.last_iteration if budget is None else budget
        evals = {int(s["iteration"]): s for s in self.stats
                 if s["split"] == "eval" and int(s["iteration"]) <= budget and _finite(s.get("mAP"))}
        if not evals:
            return None
        val = [s for s in self.stats if s["split"] == "validation" and int(s["iteration"]) in evals
               and _finite(s.get("mAP"))]
        if val:
            best = max(val, key=lambda s: (float(s["mAP"]), -int(s["iteration"])))
            it = int(best["iteration"])
        else:
            it = max(evals)
        return float(evals[it]["mAP"]), it

    def eval_curve(self) -> list:
        return sorted((int(s["iteration"]), float(s["mAP"])) for s in self.stats
                      if s["split"] == "eval" and _finite(s.get("mAP")))


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _model_defaults(model: str) -> tuple:
    try:
        from panns_core.models import model_info

        info = model_info(model)
        return info.config, info.embedding_size
    except Exception:  # noqa: BLE001 - an unknown model keeps its keys unknown
        return None, None


def setting_of(config: dict) -> dict:
    """The settings a claim compares: backbone, model, audio front end, data, sampler, mixup, recipe."""
    model = str(config.get("model", "?"))
    audio = ((config.get("run_info") or {}).get("audio_config")) or {}
    default_audio, default_emb = _model_defaults(model)
    out = {"model": model, "backbone": _VARIANT_SUFFIX.sub("", model)}
    for key in AUDIO_KEYS:
        value = config.get(key)
        if value is None:
            value = audio.get(key)
        if value is None and default_audio is not None:
            value = getattr(default_audio, key)
        out[key] = value
    train_set = os.path.basename(str(config.get("train_index") or config.get("training_set") or "full_train"))
    out["training_set"] = "balanced_train" if train_set.startswith("balanced") else "full_train"
    frac = re.search(r"frac([0-9.]+?)(?:_|\.h5|$)", train_set)
    out["data_fraction"] = float(frac.group(1)) if frac else 1.0
    out["balanced"] = str(config.get("balanced", "balanced"))
    aug = str(config.get("augmentation", "mixup"))
    out["augmentation"] = ("none" if aug == "none" else
                           "mixup_waveform" if model.endswith("mixup_time_domain") else "mixup")
    out["embedding_size"] = default_emb
    for key in RECIPE_KEYS:
        out[key] = config.get(key, RECIPE_DEFAULTS.get(key))
    return out


def read_run(run_dir: str) -> RunRecord:
    """A run folder's config.json and statistics.jsonl; a malformed file raises naming it."""
    config_path = os.path.join(run_dir, "config.json")
    stats_path = os.path.join(run_dir, "statistics.jsonl")
    try:
        with open(config_path) as f:
            config = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{config_path}: not valid JSON ({e.msg})") from None
    stats = []
    with open(stats_path) as f:
        for line_no, line in enumerate(f, 1):
            if line.strip():
                try:
                    stats.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ValueError(f"{stats_path}:{line_no}: not valid JSON ({e.msg})") from None
    if not stats:
        raise ValueError(f"{stats_path}: no evaluations recorded")
    return RunRecord(os.path.basename(os.path.normpath(run_dir)), config, stats, setting_of(config))


def read_runs(run_root: str) -> dict:
    """Every finished run under ``<run_root>/train`` (folders with config.json and statistics.jsonl)."""
    runs = {}
    for path in sorted(glob.glob(os.path.join(run_root, "train", "*", "statistics.jsonl"))):
        run_dir = os.path.dirname(path)
        if os.path.exists(os.path.join(run_dir, "config.json")):
            try:
                run = read_run(run_dir)
            except ValueError:
                continue  # a broken run tests nothing; the tables' stage reports it
            runs[run.name] = run
    return runs


def _reference_name(run_root: str, runs: dict, reference: Optional[str]) -> Optional[str]:
    if reference is None:
        snapshot = os.path.join(run_root, "profile.json")
        if os.path.exists(snapshot):
            with open(snapshot) as f:
                reference = json.load(f).get("reference_run")
    return reference if reference in runs else None


# ---------------------------------------------------------------------------- spread


@dataclass
class Spread:
    value: Optional[float]
    rule: str
    runs: list


def estimate_spread(runs: dict, reference: Optional[str]) -> Spread:
    """Seed-to-seed std of the reference system, or its curve jitter when it has a single seed."""
    if reference is None:
        return Spread(None, "no reference run", [])
    ref = runs[reference]
    replicas = [r for r in runs.values() if r.setting == ref.setting]
    if len(replicas) >= 2:
        budget = min(r.last_iteration for r in replicas)
        scores = [r.score(budget)[0] for r in replicas if r.score(budget)]
        if len(scores) >= 2:
            return Spread(float(np.std(scores, ddof=1)),
                          f"std (ddof 1) of the reference system's eval mAP over {len(scores)} seeds "
                          f"at iteration budget {budget}", sorted(r.name for r in replicas))
    curve = [m for _, m in ref.eval_curve()][-JITTER_EVALUATIONS:]
    if len(curve) >= 2:
        return Spread(float(np.std(curve, ddof=1)),
                      f"std (ddof 1) of the reference's last {len(curve)} eval mAPs (one seed only: curve jitter)",
                      [reference])
    return Spread(None, "the reference has fewer than two evaluations", [reference])


# ---------------------------------------------------------------------------- claims


@dataclass
class Element:
    """One step of a claim's chain: a label, a predicate on a run's setting, the paper's mAP."""

    label: str
    matches: Callable[[dict], bool]
    paper: Optional[float]


@dataclass
class Claim:
    id: str
    claim: str
    evidence_ids: tuple  # table / figure ids
    vary: tuple  # setting keys that may differ between the compared runs
    chain: Sequence[Element]  # worse -> better, as the paper claims
    min_present: Optional[int] = None  # elements needed (default: all)
    extra: Optional[Callable[[list], tuple]] = None  # (ok, note) from the chosen runs


def _eq(key, value):
    return lambda s: s.get(key) == value


def _models(*names):
    return lambda s: s.get("model") in names


ARCHITECTURES = tuple(paper.TABLE_XI)
_t5 = {(r["training_set"], r["balanced"], r["augmentation"]): r["mAP"] for r in paper.TABLE_V}
_hop = {r["hop_size"]: r["mAP"] for r in paper.TABLE_VI}
_emb = {r["embedding_size"]: r["mAP"] for r in paper.TABLE_VII}
_frac = {r["data_fraction"]: r["mAP"] for r in paper.TABLE_VIII}
_sr = {r["sample_rate"]: r["mAP"] for r in paper.TABLE_IX}
_mel = {r["mel_bins"]: r["mAP"] for r in paper.TABLE_X}
_xi = {m: r["mAP"] for m, r in paper.TABLE_XI.items()}
_FRONT_END = ("sample_rate", "window_size", "hop_size", "fmin", "fmax", "mel_bins")


def _cheaper(chosen: list) -> tuple:
    """MobileNets trade accuracy for cost: the MobileNet also needs fewer multiply-adds (Table XII)."""
    low, high = chosen[0].setting["model"], chosen[-1].setting["model"]
    a, b = paper.TABLE_XII.get(low, {}).get("mult_adds"), paper.TABLE_XII.get(high, {}).get("mult_adds")
    if a is None or b is None:
        return False, "multiply-adds unknown"
    return a < b, f"multiply-adds {a / 1e9:.2f}e9 ({low}) vs {b / 1e9:.2f}e9 ({high})"


CLAIMS = (
    Claim("balanced_sampling", "Balanced sampling beats uniform sampling (no mixup)", ("table_V", "fig_4b"),
          ("balanced",),
          [Element("no balancing", lambda s: s["balanced"] == "none" and s["augmentation"] == "none",
                   _t5[("full_train", "none", "none")]),
           Element("balanced", lambda s: s["balanced"] == "balanced" and s["augmentation"] == "none",
                   _t5[("full_train", "balanced", "none")])]),
    Claim("mixup", "Mixup on top of balanced sampling helps", ("table_V", "fig_4b"), ("augmentation",),
          [Element("balanced, no mixup", lambda s: s["balanced"] == "balanced" and s["augmentation"] == "none",
                   _t5[("full_train", "balanced", "none")]),
           Element("balanced + log-mel mixup", lambda s: s["balanced"] == "balanced" and s["augmentation"] == "mixup",
                   _t5[("full_train", "balanced", "mixup")])]),
    Claim("logmel_mixup", "Mixup on the log-mel beats mixup on the waveform", ("table_V", "fig_4b"),
          ("augmentation", "model"),
          [Element("waveform mixup", _eq("augmentation", "mixup_waveform"),
                   _t5[("full_train", "balanced", "mixup_waveform")]),
           Element("log-mel mixup", _eq("augmentation", "mixup"), _t5[("full_train", "balanced", "mixup")])]),
    Claim("more_data", "More training data helps (50 % < 100 % of the training set)", ("table_VIII", "fig_4d"),
          ("data_fraction",),
          [Element("50 %", _eq("data_fraction", 0.5), _frac[0.5]),
           Element("100 %", _eq("data_fraction", 1.0), _frac[1.0])]),
    Claim("full_vs_balanced_set", "The full training set beats the balanced subset", ("table_V", "fig_4b"),
          ("training_set", "data_fraction"),
          [Element("balanced subset", _eq("training_set", "balanced_train"),
                   _t5[("balanced_train", "balanced", "mixup")]),
           Element("full set", lambda s: s["training_set"] == "full_train" and s["data_fraction"] == 1.0,
                   _t5[("full_train", "balanced", "mixup")])]),
    Claim("sample_rate", "Higher sample rates help: 8 kHz < 16 kHz < 32 kHz", ("table_IX", "fig_4e"),
          ("model", "sample_rate", "window_size", "hop_size", "fmax"),
          [Element("8 kHz", _eq("sample_rate", 8000), _sr[8000]),
           Element("16 kHz", _eq("sample_rate", 16000), _sr[16000]),
           Element("32 kHz", _eq("sample_rate", 32000), _sr[32000])]),
    Claim("mel_bins", "More mel bins help: 32 < 64 < 128", ("table_X", "fig_4f"), ("model", "mel_bins"),
          [Element("32 mel bins", _eq("mel_bins", 32), _mel[32]),
           Element("64 mel bins", _eq("mel_bins", 64), _mel[64]),
           Element("128 mel bins", _eq("mel_bins", 128), _mel[128])], min_present=2),
    Claim("hop_size", "A 10-ms hop (320 samples) beats coarser hops", ("table_VI",), ("hop_size",),
          [Element("hop > 320 (best of)", lambda s: (s["hop_size"] or 0) > 320, max(_hop[h] for h in _hop if h > 320)),
           Element("hop 320", _eq("hop_size", 320), _hop[320])]),
    Claim("embedding_size", "A larger embedding helps (32 < the full size)", ("table_VII", "fig_4c"),
          ("model", "embedding_size"),
          [Element("embedding <= 128 (best of)", lambda s: (s["embedding_size"] or 1e9) <= 128, _emb[32]),
           Element("embedding >= 512", lambda s: (s["embedding_size"] or 0) >= 512, _emb[2048])]),
    Claim("deeper_cnns", "Deeper CNNs are better: CNN6 < CNN10 < CNN14", ("table_XI", "fig_4a"),
          ("model", "backbone", "embedding_size"),
          [Element("CNN6", _models("Cnn6"), _xi["Cnn6"]), Element("CNN10", _models("Cnn10"), _xi["Cnn10"]),
           Element("CNN14", _models("Cnn14"), _xi["Cnn14"])], min_present=2),
    Claim("mobilenets_tradeoff", "MobileNets trade accuracy for far fewer multiply-adds than the CNNs",
          ("table_XI", "table_XII", "fig_5"), ("model", "backbone", "embedding_size"),
          [Element("MobileNet (best of)", _models("MobileNetV1", "MobileNetV2"),
                   max(_xi["MobileNetV1"], _xi["MobileNetV2"])),
           Element("CNN (best of)", _models("Cnn6", "Cnn10", "Cnn14"), _xi["Cnn14"])], extra=_cheaper),
    Claim("wavegram_logmel_best", "Wavegram-Logmel-CNN is the best architecture", ("table_XI", "fig_5"),
          ("model", "backbone", "embedding_size"),
          [Element("other architectures (best of)",
                   lambda s: s["model"] in ARCHITECTURES and s["model"] != "Wavegram_Logmel_Cnn14",
                   max(v for m, v in _xi.items() if m != "Wavegram_Logmel_Cnn14")),
           Element("Wavegram-Logmel-CNN", _models("Wavegram_Logmel_Cnn14"), _xi["Wavegram_Logmel_Cnn14"])]),
)


def _consistent(a: dict, b: dict, vary: Sequence[str]) -> bool:
    return all(a.get(k) == b.get(k) for k in a if k not in vary)


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def evaluate_claim(claim: Claim, runs: dict, reference: Optional[str], spread: Spread) -> dict:
    """One findings row (see the module docstring for the rule)."""
    row = {"id": claim.id, "claim": claim.claim,
           "paper": " < ".join(f"{e.label} {_fmt(e.paper)}" for e in claim.chain),
           "ours": "", "verdict": NOT_MEASURED, "evidence": {"artefacts": list(claim.evidence_ids), "runs": []},
           "rule": RULE, "spread": spread.value}
    need = claim.min_present or len(claim.chain)
    chain = list(claim.chain)
    # A claim that may be read on fewer elements (CNN6 < CNN10 without CNN14) drops missing top steps.
    while len(chain) > need and not any(chain[-1].matches(r.setting) for r in runs.values()):
        chain.pop()
    top = chain[-1]
    anchors = [r for r in runs.values() if top.matches(r.setting)]
    # The reference run anchors the comparison when it qualifies; otherwise any run of the top element.
    anchors.sort(key=lambda r: (r.name != reference, r.name))
    best = None
    for anchor in anchors:
        chosen = []
        for element in chain[:-1]:
            cands = [r for r in runs.values() if element.matches(r.setting) and r.name != anchor.name
                     and _consistent(r.setting, anchor.setting, claim.vary)]
            chosen.append(cands)
        present = sum(1 for c in chosen if c) + 1
        if best is None or present > best[0]:
            best = (present, anchor, chosen)
        if present == len(chain):
            break
    if best is None or best[0] < need or spread.value is None:
        missing = [e.label for e, c in zip(chain, best[2] + [[1]]) if not c] if best else [top.label]
        row["ours"] = ("no estimate of the spread" if spread.value is None and best and best[0] >= need
                       else "runs missing: " + ", ".join(missing or [top.label]))
        return row
    _, anchor, chosen = best
    group = [anchor] + [r for c in chosen for r in c]
    budget = min(r.last_iteration for r in group)
    picked, labels = [], []
    for element, cands in zip(chain[:-1], chosen):
        if cands:  # a "best of" element keeps its best-scoring run (the conservative choice)
            picked.append(max(cands, key=lambda r: r.score(budget)[0] if r.score(budget) else -1))
            labels.append(element.label)
    picked.append(anchor)
    labels.append(top.label)
    scores = [r.score(budget) for r in picked]
    if any(s is None for s in scores):
        row["ours"] = "a run has no eval at the common budget"
        return row
    steps = [b[0] - a[0] for a, b in zip(scores, scores[1:])]
    ok = all(d > spread.value for d in steps)
    note = ""
    if claim.extra is not None:
        extra_ok, note = claim.extra(picked)
        ok = ok and extra_ok
    absent = [e.label for e in claim.chain if e.label not in labels]
    row["ours"] = ", ".join(f"{lab} {s[0]:.3f}" for lab, s in zip(labels, scores)) + \
        f" (iteration budget {budget}; spread {spread.value:.3f}" + (f"; {note}" if note else "") + \
        (f"; not run: {', '.join(absent)}" if absent else "") + ")"
    row["verdict"] = HOLDS if ok else FAILS
    row["evidence"]["runs"] = [r.name for r in picked]
    row["ours_values"] = {lab: s[0] for lab, s in zip(labels, scores)}
    return row


# ---------------------------------------------------------------------------- released checkpoints

RELEASED_DIR = "released"
"""``<run_root>/released/<model>.json``: released checkpoints re-scored (:mod:`panns_core.study.released_eval`)."""
RELEASED_FORMAT = "panns_core.released_result/1"
RELEASED_RULE = ("released checkpoints: a claim 'A < B' holds when mAP(B) - mAP(A) > spread, spread = 2 x the "
                 "standard error of the mean of the paired per-class AP differences (classes with positives "
                 "in the eval set); all compared checkpoints scored on the same eval set (same SHA-256)")


def read_released(run_root: str) -> dict:
    """``{model: result}`` of the released-checkpoint result files under ``<run_root>/released``."""
    out = {}
    for path in sorted(glob.glob(os.path.join(run_root, RELEASED_DIR, "*.json"))):
        try:
            with open(path) as f:
                record = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e.msg})") from None
        if isinstance(record, dict) and record.get("format") == RELEASED_FORMAT:
            out[record["model"]] = record
    return out


def _paired_spread(a: dict, b: dict) -> Optional[float]:
    """2 x standard error of the mean per-class AP difference of two results (None under 2 classes)."""
    d = [y - x for x, y in zip(a["per_class_AP"], b["per_class_AP"]) if x is not None and y is not None]
    if len(d) < 2:
        return None
    return 2.0 * float(np.std(d, ddof=1)) / math.sqrt(len(d))


def released_claim(claim: Claim, released: dict) -> dict:
    """One findings row from released-checkpoint scores (:data:`RELEASED_RULE`)."""
    row = {"id": claim.id, "claim": claim.claim,
           "paper": " < ".join(f"{e.label} {_fmt(e.paper)}" for e in claim.chain),
           "ours": "", "verdict": NOT_MEASURED, "evidence": {"artefacts": list(claim.evidence_ids), "runs": []},
           "rule": RELEASED_RULE, "spread": None, "source": "released checkpoints"}
    records = {m: RunRecord(m, {"model": m}, [{"iteration": 0, "split": "eval", "mAP": r["mAP"]}],
                            setting_of({"model": m})) for m, r in released.items()}
    need = claim.min_present or len(claim.chain)
    chain = list(claim.chain)
    while len(chain) > need and not any(chain[-1].matches(r.setting) for r in records.values()):
        chain.pop()
    anchors = sorted((r for r in records.values() if chain[-1].matches(r.setting)),
                     key=lambda r: -released[r.name]["mAP"])
    picked = []
    for anchor in anchors:
        chosen = []
        for element in chain[:-1]:
            cands = [r for r in records.values() if element.matches(r.setting) and r.name != anchor.name
                     and _consistent(r.setting, anchor.setting, claim.vary)]
            chosen.append(max(cands, key=lambda r: released[r.name]["mAP"]) if cands else None)
        if all(chosen):
            picked = chosen + [anchor]
            break
    if not picked:
        present = {e.label for e in chain if any(e.matches(r.setting) for r in records.values())}
        missing = [e.label for e in chain if e.label not in present]
        row["ours"] = "no released checkpoint for: " + ", ".join(missing or [chain[-1].label])
        return row
    results = [released[r.name] for r in picked]
    sets = {(r["eval_set"]["num_clips"], r["eval_set"]["sha256"]) for r in results}
    row["evidence"]["runs"] = [f"{RELEASED_DIR}/{r.name}.json" for r in picked]
    if len(sets) > 1:
        row["ours"] = "the checkpoints were scored on different eval sets: " + ", ".join(
            f"{r['model']} {r['eval_set']['sha256'][:12]}" for r in results)
        return row
    (num_clips, sha), = sets
    spreads = [_paired_spread(a, b) for a, b in zip(results, results[1:])]
    if any(s is None for s in spreads):
        row["ours"] = "fewer than two classes with positives in the eval set"
        return row
    steps = [b["mAP"] - a["mAP"] for a, b in zip(results, results[1:])]
    ok = all(d > s for d, s in zip(steps, spreads))
    note = ""
    if claim.extra is not None:
        extra_ok, note = claim.extra(picked)
        ok = ok and extra_ok
    labels = [e.label for e in chain]
    row["ours"] = (", ".join(f"{lab} ({r['model']}) {r['mAP']:.3f}" for lab, r in zip(labels, results))
                   + f" (released checkpoints, {results[-1]['precision']}; spread {', '.join(f'{s:.3f}' for s in spreads)}"
                   + (f"; {note}" if note else "") + f"; eval set {num_clips} clips, sha256 {sha})")
    row["verdict"] = HOLDS if ok else FAILS
    row["spread"] = max(spreads)
    row["ours_values"] = {lab: r["mAP"] for lab, r in zip(labels, results)}
    row["eval_set"] = {"num_clips": num_clips, "sha256": sha}
    return row


# ---------------------------------------------------------------------------- transfer claims


def read_transfer_results(run_root: str) -> dict:
    """task -> per-run rows of ``<run_root>/transfer/<task>/results.csv``."""
    out = {}
    for path in sorted(glob.glob(os.path.join(run_root, "transfer", "*", "results.csv"))):
        df = pd.read_csv(path, dtype={"shots": str, "fold": str})
        if len(df):
            out[os.path.basename(os.path.dirname(path))] = df
    return out


def _strategy_stats(df: pd.DataFrame, strategy: str, shots: str) -> Optional[tuple]:
    s = df[(df["strategy"] == strategy) & (df["shots"].astype(str) == shots)]["score"].astype(float)
    if s.empty:
        return None
    return float(s.mean()), float(s.std(ddof=1)) if len(s) > 1 else None, len(s)


def _shot_order(shots) -> list:
    ints = sorted(int(s) for s in set(shots) if str(s).isdigit())
    return [str(s) for s in ints] + (["all"] if "all" in set(map(str, shots)) else [])


def transfer_claims(run_root: str) -> list:
    """Rows ``pretraining_transfer`` and ``pretraining_few_shot`` from the transfer results."""
    results = read_transfer_results(run_root)
    paper_tr = "; ".join(f"{paper.TRANSFER_TASKS[t][2]}: scratch {v['scratch']:.3f} < fine-tune {v['finetune']:.3f}"
                         for t, v in paper.TRANSFER.items())
    rule_tr = ("pretrained beats scratch when mean(fine-tune) - mean(scratch) > the larger seed-to-seed std "
               "of the two (same shots, folds and seeds)")
    rows = [{"id": "pretraining_transfer", "claim": "A pretrained PANN fine-tuned beats training from scratch",
             "paper": paper_tr, "ours": "no transfer results", "verdict": NOT_MEASURED,
             "evidence": {"artefacts": [v[0] for v in paper.TRANSFER_TASKS.values()], "runs": []},
             "rule": rule_tr, "spread": None},
            {"id": "pretraining_few_shot", "claim": "Pretraining helps most when there are few training clips",
             "paper": "Figs. 6-11: fine-tune above scratch at every size, the gap widest at the fewest clips per class",
             "ours": "no few-shot curves", "verdict": NOT_MEASURED,
             "evidence": {"artefacts": [v[1] for v in paper.TRANSFER_TASKS.values()], "runs": []},
             "rule": ("holds when the fine-tune - scratch gap at the fewest shots exceeds the spread and the gap "
                      "with the most clips by more than the spread (spread: larger seed std at the fewest shots)"),
             "spread": None}]
    run_strategies = sorted({s for df in results.values() for s in df["strategy"].astype(str)})
    if results and not {"scratch", "finetune"} <= set(run_strategies):  # e.g. the released profile: frozen heads
        for row in rows:
            row["ours"] = (f"needs scratch and fine-tune runs; transfer ran {', '.join(run_strategies)} on "
                           f"{', '.join(sorted(results))}")
    for task, df in results.items():
        shots = _shot_order(df["shots"].astype(str))
        if not shots:
            continue
        most = shots[-1]
        sc, ft = _strategy_stats(df, "scratch", most), _strategy_stats(df, "finetune", most)
        if sc and ft and sc[1] is not None and ft[1] is not None and rows[0]["verdict"] == NOT_MEASURED:
            spread = max(sc[1], ft[1])
            rows[0].update(ours=f"{task}, {most} shots: scratch {sc[0]:.3f} vs fine-tune {ft[0]:.3f} "
                                f"(n={sc[2]}/{ft[2]}, spread {spread:.3f})",
                           verdict=HOLDS if ft[0] - sc[0] > spread else FAILS, spread=spread)
            rows[0]["evidence"]["runs"].append(f"transfer/{task}")
        few = shots[0]
        if len(shots) >= 2 and rows[1]["verdict"] == NOT_MEASURED:
            sc_f, ft_f = _strategy_stats(df, "scratch", few), _strategy_stats(df, "finetune", few)
            if sc and ft and sc_f and ft_f and sc_f[1] is not None and ft_f[1] is not None:
                spread = max(sc_f[1], ft_f[1])
                gap_few, gap_most = ft_f[0] - sc_f[0], ft[0] - sc[0]
                ok = gap_few > spread and gap_few - gap_most > spread
                rows[1].update(ours=f"{task}: gap {gap_few:+.3f} at {few} shot(s) vs {gap_most:+.3f} at {most} "
                                    f"(spread {spread:.3f}, n={sc_f[2]})",
                               verdict=HOLDS if ok else FAILS, spread=spread)
                rows[1]["evidence"]["runs"].append(f"transfer/{task}")
    return rows


# ---------------------------------------------------------------------------- the file


def compute_findings(run_root: str, reference: Optional[str] = None) -> dict:
    """Every claim's row from the run folders under ``run_root`` (see the module docstring)."""
    runs = read_runs(run_root)
    reference = _reference_name(run_root, runs, reference)
    spread = estimate_spread(runs, reference)
    released = read_released(run_root)
    rows = []
    for c in CLAIMS:
        row = evaluate_claim(c, runs, reference, spread)
        if released and row["verdict"] == NOT_MEASURED:  # no trained runs test it: the released checkpoints may
            row = released_claim(c, released)
        rows.append(row)
    rows += transfer_claims(run_root)
    return {"run_root": os.path.basename(os.path.normpath(run_root)), "reference_run": reference,
            "rule": RULE, "released_rule": RELEASED_RULE if released else None,
            "released_checkpoints": sorted(released), "spread": {"value": spread.value, "rule": spread.rule, "runs": spread.runs},
            "verdicts": {v: sum(r["verdict"] == v for r in rows) for v in VERDICTS}, "rows": rows}


def write_findings(run_root: str, reference: Optional[str] = None) -> str:
    """Compute and write ``<run_root>/findings.json`` (atomically); returns its path."""
    data = compute_findings(run_root, reference)
    path = os.path.join(run_root, "findings.json")
    write_text(path, json.dumps(data, indent=1, allow_nan=False))
    return path


def _load(source) -> dict:
    """Findings from a dict, a run root (computed now from its runs) or a ``findings.json`` path."""
    if isinstance(source, dict):
        return source
    if os.path.isdir(source):
        return compute_findings(source)
    with open(source) as f:
        return json.load(f)


def findings_frame(source) -> pd.DataFrame:
    """The findings as a table (id, claim, paper, ours, verdict, evidence) from a run root, a path or a dict."""
    data = _load(source)
    rows = [{"id": r["id"], "claim": r["claim"], "paper": r["paper"], "ours": r["ours"], "verdict": r["verdict"],
             "evidence": ", ".join(r["evidence"]["artefacts"] + r["evidence"]["runs"])} for r in data["rows"]]
    return pd.DataFrame(rows, columns=["id", "claim", "paper", "ours", "verdict", "evidence"])


def _cell(value) -> str:
    return str(value).replace("|", "/").replace("\n", " ")


def findings_markdown(source, heading: str = "## Findings") -> str:
    """The findings as a Markdown section (verdict counts, the rules, one table row per claim).

    ``source``: a run root (computed now from its runs), a ``findings.json`` path or its dict;
    the report and the tables notebook open with it.
    """
    data = _load(source)
    counts = ", ".join(f"{n} {v}" for v, n in data["verdicts"].items())
    spread = data["spread"]
    lines = [heading, "",
             f"Which of the paper's claims hold in the runs of `{data['run_root']}` (reference run "
             f"`{data['reference_run']}`): {counts}.", "",
             f"*Rule.* {data['rule']}", "",
             f"*Spread.* {spread['value'] if spread['value'] is None else round(spread['value'], 4)}: "
             f"{spread['rule']}", "",
             "| claim | paper | ours | verdict | evidence |", "|---|---|---|---|---|"]
    for r in data["rows"]:
        evidence = ", ".join(r["evidence"]["artefacts"] + r["evidence"]["runs"])
        lines.append(f"| {_cell(r['claim'])} | {_cell(r['paper'])} | {_cell(r['ours'])} | **{_cell(r['verdict'])}** "
                     f"| {_cell(evidence)} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> str:
    p = argparse.ArgumentParser(prog="python -m panns_core.study.findings", description=__doc__.split("\n")[0])
    p.add_argument("run_root", help="runs/<profile>")
    p.add_argument("--reference", help="reference run name (default: the profile's reference_run)")
    args = p.parse_args(argv)
    path = write_findings(args.run_root, args.reference)
    with pd.option_context("display.max_colwidth", 80, "display.width", 200):
        print(findings_frame(path)[["id", "verdict", "ours"]].to_string(index=False))
    print(f"written {path}")
    return path


if __name__ == "__main__":  # pragma: no cover
    main()
