"""The study's findings: one row per claim of the paper, each an effect with its interval and a verdict.

Nothing here is typed in except the claims themselves and the paper's numbers
(from :mod:`panns_core.paper`). For each claim the runs that test it are found by
their ``config.json`` (not by their names) and compared by one stated method:

* **Arms and seeds.** Runs whose settings agree on everything but ``seed`` form an
  *arm*; a claim ``A < B`` compares an arm of ``A`` with an arm of ``B`` that agree
  on every setting except the ones the claim varies, seed by seed (paired: the same
  seeds in both arms).
* **Score** (:data:`SCORE_RULE`): the eval-split mAP at the last iteration every
  compared run was evaluated at: the same iteration and the same rule for every arm,
  no selection on the eval set.
* **Effect** (:data:`METHOD`): the mean over seeds of the paired difference
  ``score(B) - score(A)``, signed so that a positive effect is what the paper says,
  with a two-sided 95 % t-interval over seeds (n - 1 degrees of freedom), and the
  smallest effect the design could have detected (80 % power at that n and the
  observed spread of the differences).
* **Verdict** (:data:`VERDICT_RULE`): ``supported`` when the interval lies above 0,
  ``contradicted`` when it lies below 0, ``inconclusive`` when it contains 0, ``not
  tested here`` (with the reason) when a run the claim needs is missing, fewer than
  :data:`MIN_SEEDS` seeds are paired, or the profile says why it dropped the claim.
  A chain ``A < B < C`` is ``supported`` only when every step is, ``contradicted``
  when some step's whole interval lies against the paper, else ``inconclusive``.

**Released checkpoints** (the ``released`` profile): a claim no trained run tests is
judged from the re-scored released checkpoints in ``<run_root>/released/<model>.json``
with the same outcomes, the classes as replicates (:data:`RELEASED_METHOD`: paired
per-class AP differences on one eval set, t-interval over classes).

**Transfer claims** read ``<run_root>/transfer/<task>/results.csv`` (one row per
strategy x shots x fold x seed): paired by seed, the folds of a seed averaged.

    python -m panns_core.study.findings runs/default          # writes runs/default/findings.json, prints the table
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import math
import os
import re
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from panns_core import paper
from panns_core.fsutil import write_text

SUPPORTED, CONTRADICTED, INCONCLUSIVE, NOT_TESTED = "supported", "contradicted", "inconclusive", "not tested here"
VERDICTS = (SUPPORTED, CONTRADICTED, INCONCLUSIVE, NOT_TESTED)
CONFIDENCE = 0.95
POWER = 0.80
MIN_SEEDS = 3
"""Paired seeds a trained claim needs for a verdict (fewer: not tested here)."""

SCORE_RULE = ("score of a run = its eval-split mAP at the last iteration every compared run was evaluated at "
              "(the same iteration and rule for every arm; nothing selected on the eval set)")
METHOD = ("effect = mean over seeds of the paired difference score(paper's better arm) - score(paper's worse arm), "
          "both arms trained with the same seeds; 95 % CI = two-sided t-interval over seeds (n - 1 degrees of "
          "freedom); detectable = smallest effect a paired t-test at that n detects with 80 % power, from the "
          "observed spread of the differences")
VERDICT_RULE = ("supported: the 95 % CI lies above 0 (the paper's direction); contradicted: it lies below 0; "
                "inconclusive: it contains 0; a chain A < B < C is supported only when every step is, "
                "contradicted when some step's whole interval lies against the paper")
RELEASED_METHOD = ("released checkpoints: effect = mean over classes of the paired per-class AP difference "
                   "(classes with positives, one eval set, same SHA-256); 95 % CI = t-interval over classes; "
                   "the classes are the replicates (one checkpoint per system, no seeds)")

_VARIANT_SUFFIX = re.compile(r"_(emb\d+|16k|8k|mel\d+|mixup_time_domain|no_specaug)$")
AUDIO_KEYS = ("sample_rate", "window_size", "hop_size", "mel_bins", "fmin", "fmax")
RECIPE_KEYS = ("batch_size", "learning_rate", "mixup_alpha", "spec_augment_time_width", "warmup_iterations",
               "precision")
RECIPE_DEFAULTS = {"mixup_alpha": 1.0, "spec_augment_time_width": None, "warmup_iterations": 0,
                   "precision": "fp32"}


# ---------------------------------------------------------------------------- statistics


@dataclass
class Interval:
    """A paired comparison: per-replicate differences, their mean, t-interval and detectable effect."""

    differences: list
    replicates: list  # seed numbers, or class indices for released checkpoints

    @property
    def n(self) -> int:
        return len(self.differences)

    @property
    def effect(self) -> float:
        return float(np.mean(self.differences))

    @property
    def sd(self) -> float:
        return float(np.std(self.differences, ddof=1)) if self.n > 1 else float("nan")

    @property
    def ci(self) -> list:
        if self.n < 2:
            return [float("nan"), float("nan")]
        half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, self.n - 1)) * self.sd / math.sqrt(self.n)
        return [self.effect - half, self.effect + half]

    @property
    def detectable(self) -> float:
        """Smallest true effect a two-sided paired t-test (alpha 0.05) finds with 80 % power at this n and sd."""
        if self.n < 2:
            return float("nan")
        df = self.n - 1
        return (float(stats.t.ppf(0.5 + CONFIDENCE / 2, df)) + float(stats.t.ppf(POWER, df))) * self.sd / math.sqrt(
            self.n)

    @property
    def verdict(self) -> str:
        low, high = self.ci
        if low > 0:
            return SUPPORTED
        if high < 0:
            return CONTRADICTED
        return INCONCLUSIVE


def interval(differences: Sequence[float], replicates: Sequence = ()) -> Interval:
    return Interval([float(d) for d in differences], list(replicates) or list(range(len(differences))))


def chain_verdict(steps: Sequence[Interval]) -> str:
    """Every step supported -> supported; a step wholly against the paper -> contradicted; else inconclusive."""
    verdicts = [s.verdict for s in steps]
    if verdicts and all(v == SUPPORTED for v in verdicts):
        return SUPPORTED
    if CONTRADICTED in verdicts:
        return CONTRADICTED
    return INCONCLUSIVE


def deciding_step(steps: Sequence[Interval]) -> int:
    """The step that decides a chain's verdict (the row's effect): the one furthest against the paper."""
    verdict = chain_verdict(steps)
    if verdict == CONTRADICTED:
        return min(range(len(steps)), key=lambda i: steps[i].ci[1])
    return min(range(len(steps)), key=lambda i: steps[i].ci[0])


def _r(v, digits=4):
    return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else round(float(v), digits)


def _fmt(v) -> str:
    return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.3f}"


def _signed(v) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{v:+.3f}"


def step_record(label: str, iv: Interval) -> dict:
    return {"step": label, "effect": _r(iv.effect), "ci": [_r(iv.ci[0]), _r(iv.ci[1])], "n": iv.n,
            "detectable_effect": _r(iv.detectable), "verdict": iv.verdict,
            "differences": [_r(d, 5) for d in iv.differences], "replicates": iv.replicates}


# ---------------------------------------------------------------------------- runs and settings


@dataclass
class RunRecord:
    """One run folder: name, config, its evaluations (one dict per statistics line)."""

    name: str
    config: dict
    stats: list
    setting: dict = field(default_factory=dict)

    @property
    def seed(self):
        return self.config.get("seed")

    @property
    def last_iteration(self) -> int:
        return max(int(s["iteration"]) for s in self.stats)

    def eval_iterations(self) -> set:
        return {int(s["iteration"]) for s in self.stats if s["split"] == "eval" and _finite(s.get("mAP"))}

    def eval_at(self, iteration: int) -> Optional[dict]:
        rows = [s for s in self.stats if s["split"] == "eval" and int(s["iteration"]) == iteration
                and _finite(s.get("mAP"))]
        return rows[-1] if rows else None

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
    """The settings a claim compares (everything but the seed): model, front end, data, sampler, mixup, recipe."""
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
    rows = []
    with open(stats_path) as f:
        for line_no, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ValueError(f"{stats_path}:{line_no}: not valid JSON ({e.msg})") from None
    if not rows:
        raise ValueError(f"{stats_path}: no evaluations recorded")
    return RunRecord(os.path.basename(os.path.normpath(run_dir)), config, rows, setting_of(config))


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


def _snapshot(run_root: str) -> dict:
    path = os.path.join(run_root, "profile.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return {}


# ---------------------------------------------------------------------------- arms


_SEED_SUFFIX = re.compile(r"_seed\d+$")


@dataclass
class Arm:
    """Runs with one setting (all but the seed), keyed by seed."""

    label: str
    setting: dict
    runs: dict  # seed -> RunRecord

    @property
    def names(self) -> list:
        return [self.runs[s].name for s in sorted(self.runs, key=str)]


def group_arms(runs: dict) -> list:
    """Runs grouped by setting; the label is the common run name without its ``_seedK`` suffix."""
    groups: dict = {}
    for run in runs.values():
        key = json.dumps(run.setting, sort_keys=True, default=str)
        groups.setdefault(key, []).append(run)
    arms = []
    for members in groups.values():
        by_seed = {}
        for run in sorted(members, key=lambda r: r.name):
            by_seed.setdefault(run.seed, run)  # two runs with one seed: the first name (a copy adds nothing)
        labels = sorted({_SEED_SUFFIX.sub("", r.name) for r in members})
        arms.append(Arm(labels[0] if len(labels) == 1 else "+".join(labels), members[0].setting, by_seed))
    return sorted(arms, key=lambda a: a.label)


def stage_cpu_seconds(run_root: str, run_name: str) -> Optional[float]:
    """The training stage's kernel CPU seconds, from the pipeline's record (None when not recorded)."""
    path = os.path.join(run_root, "stages", f"train_{run_name}.json")
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            value = json.load(f).get("cpu_s")
    except (OSError, json.JSONDecodeError):
        return None
    return float(value) if _finite(value) else None


def arm_costs(run_root: str, arms: Sequence[Arm]) -> list:
    """Per arm: runs, seeds, iterations and the CPU seconds its training stages took."""
    out = []
    for arm in arms:
        cpu = [stage_cpu_seconds(run_root, n) for n in arm.names]
        out.append({"arm": arm.label, "runs": arm.names, "seeds": sorted(arm.runs, key=str),
                    "iterations": sorted({r.last_iteration for r in arm.runs.values()}),
                    "cpu_s": round(sum(c for c in cpu if c is not None), 1) if any(c is not None for c in cpu)
                    else None})
    return out


# ---------------------------------------------------------------------------- the data behind a run


def _data_facts(run: RunRecord) -> dict:
    """Class names, their designed cues and training-clip counts of a run's data (empty when not readable)."""
    root = run.config.get("data_root")
    facts = {"names": None, "cues": None, "counts": None}
    if not root:
        return facts
    labels = os.path.join(root, "metadata", "class_labels_indices.csv")
    if os.path.exists(labels):
        with open(labels, newline="", encoding="utf-8") as f:
            facts["names"] = [row["display_name"] for row in csv.DictReader(f)]
        from panns_core.data.synthetic import CLASS_BY_NAME

        facts["cues"] = [getattr(CLASS_BY_NAME.get(n), "cue", None) for n in facts["names"]]
    index = (run.config.get("run_info") or {}).get("train_index")
    if index and os.path.exists(index):
        try:
            from panns_core.data.index import read_index

            facts["counts"] = read_index(index).targets.sum(axis=0).astype(int).tolist()
        except Exception:  # noqa: BLE001 - counts are a detail of the design sentence, never a reason to fail
            pass
    return facts


# ---------------------------------------------------------------------------- claims


@dataclass
class Element:
    """One step of a claim's chain: a label and a predicate on a run's setting."""

    label: str
    matches: Callable[[dict], bool]


@dataclass
class Claim:
    id: str
    claim: str
    paper: str  # the paper's numbers (AudioSet), for reference
    evidence_ids: tuple  # table / figure ids
    vary: tuple  # setting keys that may differ between the compared arms
    chain: Sequence[Element]  # worse -> better, as the paper claims
    min_present: Optional[int] = None  # elements needed (default: all)
    focus: Optional[str] = None  # classes whose AP is reported beside mAP: "tail" or a synthetic cue name
    needs: str = ""  # what testing it takes, said when the runs are missing


def _eq(key, value):
    return lambda s: s.get(key) == value


def _models(*names):
    return lambda s: s.get("model") in names


_t5 = {(r["training_set"], r["balanced"], r["augmentation"]): r["mAP"] for r in paper.TABLE_V}
_hop = {r["hop_size"]: r["mAP"] for r in paper.TABLE_VI}
_emb = {r["embedding_size"]: r["mAP"] for r in paper.TABLE_VII}
_frac = {r["data_fraction"]: r["mAP"] for r in paper.TABLE_VIII}
_sr = {r["sample_rate"]: r["mAP"] for r in paper.TABLE_IX}
_mel = {r["mel_bins"]: r["mAP"] for r in paper.TABLE_X}
_xi = {m: r["mAP"] for m, r in paper.TABLE_XI.items()}
ARCHITECTURES = tuple(paper.TABLE_XI)


def _cheaper(low: str, high: str) -> tuple:
    """MobileNets trade accuracy for cost: the MobileNet also needs fewer multiply-adds (Table XII)."""
    a, b = paper.TABLE_XII.get(low, {}).get("mult_adds"), paper.TABLE_XII.get(high, {}).get("mult_adds")
    if a is None or b is None:
        return False, "multiply-adds unknown"
    return a < b, f"multiply-adds {a / 1e9:.2f}e9 ({low}) vs {b / 1e9:.2f}e9 ({high})"


CLAIMS = (
    Claim("balanced_sampling", "Balanced sampling beats uniform sampling (no mixup)",
          f"full set, no mixup: no balancing {_t5[('full_train', 'none', 'none')]:.3f} < balanced "
          f"{_t5[('full_train', 'balanced', 'none')]:.3f}", ("table_V", "fig_4b"), ("balanced",),
          [Element("no balancing", lambda s: s["balanced"] == "none" and s["augmentation"] == "none"),
           Element("balanced", lambda s: s["balanced"] == "balanced" and s["augmentation"] == "none")],
          focus="tail", needs="arms with and without the balanced sampler, no mixup"),
    Claim("mixup", "Mixup on top of balanced sampling helps",
          f"balanced subset: no mixup {_t5[('balanced_train', 'balanced', 'none')]:.3f} < mixup "
          f"{_t5[('balanced_train', 'balanced', 'mixup')]:.3f}; full set: {_t5[('full_train', 'balanced', 'none')]:.3f}"
          f" < {_t5[('full_train', 'balanced', 'mixup')]:.3f}", ("table_V", "fig_4b"), ("augmentation",),
          [Element("balanced, no mixup", lambda s: s["balanced"] == "balanced" and s["augmentation"] == "none"),
           Element("balanced + log-mel mixup", lambda s: s["balanced"] == "balanced" and s["augmentation"] == "mixup")],
          needs="balanced arms with and without log-mel mixup"),
    Claim("logmel_mixup", "Mixup on the log-mel beats mixup on the waveform",
          f"waveform mixup {_t5[('full_train', 'balanced', 'mixup_waveform')]:.3f} < log-mel mixup "
          f"{_t5[('full_train', 'balanced', 'mixup')]:.3f}", ("table_V", "fig_4b"), ("augmentation", "model"),
          [Element("waveform mixup", _eq("augmentation", "mixup_waveform")),
           Element("log-mel mixup", _eq("augmentation", "mixup"))],
          needs="a waveform-mixup arm (Cnn14_mixup_time_domain) beside a log-mel one"),
    Claim("more_data", "More training data helps",
          f"50 % {_frac[0.5]:.3f} < 80 % {_frac[0.8]:.3f} < 100 % {_frac[1.0]:.3f}", ("table_VIII", "fig_4d"),
          ("data_fraction",),
          [Element("part of the training set (largest part run)", lambda s: s["data_fraction"] < 1.0),
           Element("100 %", _eq("data_fraction", 1.0))],
          focus="tail", needs="an arm on a fraction of the training set"),
    Claim("full_vs_balanced_set", "The full training set beats the balanced subset",
          f"balancing, no mixup: balanced subset {_t5[('balanced_train', 'balanced', 'none')]:.3f} < full set "
          f"{_t5[('full_train', 'balanced', 'none')]:.3f}; with mixup {_t5[('balanced_train', 'balanced', 'mixup')]:.3f}"
          f" < {_t5[('full_train', 'balanced', 'mixup')]:.3f}", ("table_V", "fig_4b"),
          ("training_set", "data_fraction"),
          [Element("balanced subset", _eq("training_set", "balanced_train")),
           Element("full set", lambda s: s["training_set"] == "full_train" and s["data_fraction"] == 1.0)],
          needs="an arm on the balanced subset"),
    Claim("sample_rate", "The 4-8 kHz band helps: 8 kHz < 16 kHz (16 kHz within 1 % of 32 kHz)",
          f"8 kHz {_sr[8000]:.3f} < 16 kHz {_sr[16000]:.3f} (32 kHz {_sr[32000]:.3f})", ("table_IX", "fig_4e"),
          ("model", "sample_rate", "window_size", "hop_size", "fmax"),
          [Element("8 kHz", _eq("sample_rate", 8000)), Element("16 kHz", _eq("sample_rate", 16000))],
          focus="energy in 4-8 kHz only", needs="8 kHz and 16 kHz arms"),
    Claim("mel_bins", "More mel bins help: 32 < 64 < 128",
          f"32 {_mel[32]:.3f} < 64 {_mel[64]:.3f} < 128 {_mel[128]:.3f}", ("table_X", "fig_4f"), ("model", "mel_bins"),
          [Element("32 mel bins", _eq("mel_bins", 32)), Element("64 mel bins", _eq("mel_bins", 64)),
           Element("128 mel bins", _eq("mel_bins", 128))], min_present=2,
          needs="a 32-mel-bin arm"),
    Claim("hop_size", "A 10-ms hop (320 samples) beats coarser hops",
          f"hop 1000 {_hop[1000]:.3f}, 640 {_hop[640]:.3f}, 500 {_hop[500]:.3f} < 320 {_hop[320]:.3f}", ("table_VI",),
          ("hop_size",),
          [Element("hop > 320 (best of)", lambda s: (s["hop_size"] or 0) > 320), Element("hop 320", _eq("hop_size", 320))],
          needs="an arm with a hop above 320"),
    Claim("embedding_size", "A larger embedding helps (32 < the full size)",
          f"32 {_emb[32]:.3f} < 128 {_emb[128]:.3f} < 512 {_emb[512]:.3f} < 2048 {_emb[2048]:.3f}",
          ("table_VII", "fig_4c"), ("model", "embedding_size"),
          [Element("embedding <= 128 (best of)", lambda s: (s["embedding_size"] or 1e9) <= 128),
           Element("embedding >= 512", lambda s: (s["embedding_size"] or 0) >= 512)],
          needs="CNN14 arms with 32/128-dimensional embeddings (Cnn14_emb32/128)"),
    Claim("deeper_cnns", "Deeper CNNs are better: CNN6 < CNN10 < CNN14",
          f"CNN6 {_xi['Cnn6']:.3f} < CNN10 {_xi['Cnn10']:.3f} < CNN14 {_xi['Cnn14']:.3f}", ("table_XI", "fig_4a"),
          ("model", "backbone", "embedding_size"),
          [Element("CNN6", _models("Cnn6")), Element("CNN10", _models("Cnn10")), Element("CNN14", _models("Cnn14"))],
          min_present=2, needs="CNN6 and CNN10 (and CNN14) arms"),
    Claim("mobilenets_tradeoff", "MobileNets trade accuracy for far fewer multiply-adds than the CNNs",
          f"MobileNetV1 {_xi['MobileNetV1']:.3f}, V2 {_xi['MobileNetV2']:.3f} < CNN14 {_xi['Cnn14']:.3f}, at "
          f"{paper.TABLE_XII['MobileNetV1']['mult_adds'] / 1e9:.1f}e9 / {paper.TABLE_XII['MobileNetV2']['mult_adds'] / 1e9:.1f}e9"
          f" vs {paper.TABLE_XII['Cnn14']['mult_adds'] / 1e9:.1f}e9 multiply-adds", ("table_XI", "table_XII", "fig_5"),
          ("model", "backbone", "embedding_size"),
          [Element("MobileNet (best of)", _models("MobileNetV1", "MobileNetV2")),
           Element("CNN (best of)", _models("Cnn6", "Cnn10", "Cnn14"))], needs="a MobileNet arm beside a CNN arm"),
    Claim("wavegram_logmel_best", "Wavegram-Logmel-CNN is the best architecture",
          f"Wavegram-Logmel-CNN {_xi['Wavegram_Logmel_Cnn14']:.3f} > every other (best: ResNet38 {_xi['ResNet38']:.3f})",
          ("table_XI", "fig_5"), ("model", "backbone", "embedding_size"),
          [Element("other architectures (best of)",
                   lambda s: s["model"] in ARCHITECTURES and s["model"] != "Wavegram_Logmel_Cnn14"),
           Element("Wavegram-Logmel-CNN", _models("Wavegram_Logmel_Cnn14"))],
          needs="a Wavegram-Logmel-CNN arm beside the other architectures"),
)
CLAIM_IDS = tuple(c.id for c in CLAIMS) + ("pretraining_transfer", "frozen_few_shot")


def _consistent(a: dict, b: dict, vary: Sequence[str]) -> bool:
    return all(a.get(k) == b.get(k) for k in a if k not in vary)


def _not_tested(claim_id: str, claim: str, paper_text: str, evidence: Sequence[str], reason: str, **extra) -> dict:
    return {"id": claim_id, "claim": claim, "paper": paper_text, "ours": reason, "verdict": NOT_TESTED,
            "reason": reason, "evidence": {"artefacts": list(evidence), "runs": []}, "effect": None,
            "ci": [None, None], "n_seeds": None, "design": None, "detectable_effect": None, "steps": [], **extra}


def common_iteration(runs: Sequence[RunRecord]) -> Optional[int]:
    """The last iteration at which every run was evaluated (None: no common evaluation)."""
    common = set.intersection(*(r.eval_iterations() for r in runs)) if runs else set()
    return max(common) if common else None


def _focus_classes(claim: Claim, facts: dict) -> tuple:
    """(label, class indices) whose AP is reported beside mAP; (None, []) when the data do not say."""
    if claim.focus == "tail":
        counts = facts.get("counts")
        if not counts:
            return None, []
        k = max(1, len(counts) // 3)
        order = np.argsort(np.asarray(counts), kind="stable")[:k]
        return f"tail classes (the {k} with the fewest training clips)", sorted(int(i) for i in order)
    if claim.focus is None:
        return None, []
    cues = facts.get("cues") or []
    names = facts.get("names") or []
    chosen = [i for i, c in enumerate(cues) if c == claim.focus]
    if not chosen:
        return None, []
    return "cue classes (" + ", ".join(names[i] for i in chosen) + ")", chosen


def _class_mean(row: dict, classes: Sequence[int]) -> Optional[float]:
    ap = row.get("AP") or []
    values = [ap[i] for i in classes if i < len(ap) and _finite(ap[i])]
    return float(np.mean(values)) if values else None


def _train_set_text(run: RunRecord) -> str:
    s = run.setting
    name = ("the balanced subset" if s["training_set"] == "balanced_train" else
            "the full training set" if s["data_fraction"] >= 1 else f"{s['data_fraction']:g} of the full training set")
    clips = (run.config.get("run_info") or {}).get("train_clips")
    if not clips:
        return name
    passes = run.last_iteration * int(run.config.get("batch_size") or 0) / clips
    return f"{name} ({clips} clips, {passes:.0f} passes)" if passes >= 2 else f"{name} ({clips} clips)"


def _design_sentence(claim: Claim, arms: Sequence[Arm], seeds: Sequence, iteration: int, facts: dict,
                     eval_clips, focus_label: Optional[str]) -> str:
    first = [next(iter(a.runs.values())) for a in arms]
    ref = first[-1]
    sets = [_train_set_text(r) for r in first]
    train = sets[0] if len(set(sets)) == 1 else " / ".join(f"{t} ('{a.label}')" for t, a in zip(sets, arms))
    counts = facts.get("counts")
    tail = (f"; clips per class from {max(counts)} down to {min(counts)} (long tail)"
            if counts and claim.focus == "tail" else "")
    arms_text = " vs ".join(f"'{a.label}'" for a in arms)
    return (f"{ref.setting['backbone']} arms {arms_text} differing only in {', '.join(_varied(arms))}, "
            f"seeds {', '.join(str(x) for x in seeds)} in every arm, {iteration} iterations of batch "
            f"{ref.config.get('batch_size')} on {train}{tail}; scored on the whole eval split ({eval_clips} clips) "
            f"at iteration {iteration}" + (f"; {focus_label} reported beside mAP" if focus_label else "") + ".")


def _varied(arms: Sequence[Arm]) -> list:
    keys = [k for k in arms[0].setting if k != "backbone" and len({str(a.setting.get(k)) for a in arms}) > 1]
    return keys or ["nothing"]


def _pick_arms(claim: Claim, arms: Sequence[Arm], reference: Optional[str]) -> tuple:
    """(chain elements kept, arms per element) with the most elements present, anchored on the reference's arm."""
    need = claim.min_present or len(claim.chain)
    chain = list(claim.chain)
    while len(chain) > need and not any(chain[-1].matches(a.setting) for a in arms):
        chain.pop()
    anchors = [a for a in arms if chain[-1].matches(a.setting)]
    anchors.sort(key=lambda a: (not any(r.name == reference for r in a.runs.values()), -len(a.runs), a.label))
    best = None
    for anchor in anchors:
        chosen = []
        for element in chain[:-1]:
            cands = [a for a in arms if a is not anchor and element.matches(a.setting)
                     and _consistent(a.setting, anchor.setting, claim.vary)]
            chosen.append(cands)
        present = sum(1 for c in chosen if c) + 1
        if best is None or present > best[0]:
            best = (present, anchor, chosen)
        if present == len(chain):
            break
    return chain, need, best


def evaluate_claim(claim: Claim, runs: dict, reference: Optional[str], dropped: Optional[dict] = None,
                   arms: Optional[list] = None) -> dict:
    """One findings row (see the module docstring for the method)."""
    arms = group_arms(runs) if arms is None else arms
    row = _not_tested(claim.id, claim.claim, claim.paper, claim.evidence_ids, "", method=METHOD)
    dropped_reason = (dropped or {}).get(claim.id)
    chain, need, best = _pick_arms(claim, arms, reference)
    if best is None or best[0] < need:
        missing = [e.label for e in chain if not any(e.matches(a.setting) for a in arms)]
        reason = dropped_reason or (f"runs missing: {', '.join(missing)} (needs {claim.needs})" if missing
                                    else f"runs missing (needs {claim.needs})")
        row.update(ours=reason, reason=reason)
        return row
    _, anchor, chosen = best
    picked, labels = [], []
    for element, cands in zip(chain[:-1], chosen):
        if cands:  # a "best of" element keeps the arm scoring highest at the common iteration (against the paper)
            picked.append(max(cands, key=lambda a: (len(a.runs), _arm_mean(a, anchor)), default=None))
            labels.append(element.label)
    picked.append(anchor)
    labels.append(chain[-1].label)
    seeds = sorted(set.intersection(*(set(a.runs) for a in picked)), key=str)
    compared = [a.runs[s] for a in picked for s in seeds]
    iteration = common_iteration(compared) if compared else None
    row["evidence"]["runs"] = [a.runs[s].name for a in picked for s in seeds]
    if len(seeds) < MIN_SEEDS or iteration is None:
        reason = dropped_reason or (f"{len(seeds)} paired seed(s) ({', '.join(map(str, seeds)) or 'none'}) in arms "
                                    f"{', '.join(a.label for a in picked)}; a verdict needs {MIN_SEEDS} or more"
                                    if len(seeds) < MIN_SEEDS else "the arms share no evaluated iteration")
        row.update(ours=reason, reason=reason)
        return row
    scores = [[a.runs[s].eval_at(iteration) for s in seeds] for a in picked]
    steps = [interval([b["mAP"] - a["mAP"] for a, b in zip(lo, hi)], seeds) for lo, hi in zip(scores, scores[1:])]
    verdict = chain_verdict(steps)
    k = deciding_step(steps)
    facts = _data_facts(anchor.runs[seeds[0]])
    focus_label, focus = _focus_classes(claim, facts)
    note = ""
    if claim.id == "mobilenets_tradeoff":
        ok, note = _cheaper(picked[0].setting["model"], picked[-1].setting["model"])
        if not ok and verdict == SUPPORTED:
            verdict = INCONCLUSIVE
    means = [float(np.mean([x["mAP"] for x in arm_scores])) for arm_scores in scores]
    eval_clips = scores[-1][0].get("num_clips", "?")
    row.update(
        verdict=verdict, reason=None, effect=_r(steps[k].effect), ci=[_r(steps[k].ci[0]), _r(steps[k].ci[1])],
        n_seeds=len(seeds), detectable_effect=_r(steps[k].detectable),
        steps=[step_record(f"{a} -> {b}", s) for a, b, s in zip(labels, labels[1:], steps)],
        ours_values={lab: _r(m) for lab, m in zip(labels, means)}, iteration=iteration,
        design=_design_sentence(claim, picked, seeds, iteration, facts, eval_clips, focus_label),
        arms=[a.label for a in picked])
    if focus:
        fsteps = []
        for lo, hi in zip(scores, scores[1:]):
            d = [(_class_mean(b, focus), _class_mean(a, focus)) for a, b in zip(lo, hi)]
            if all(x is not None and y is not None for x, y in d):
                fsteps.append(interval([x - y for x, y in d], seeds))
        if len(fsteps) == len(steps):
            row["focus"] = {"classes": focus_label, "steps": [step_record(f"{a} -> {b}", s) for a, b, s in
                                                              zip(labels, labels[1:], fsteps)]}
    absent = [e.label for e in claim.chain if e.label not in labels]
    text = ", ".join(f"{lab} {m:.3f}" for lab, m in zip(labels, means))
    step_text = "; ".join(f"{lab_b} - {lab_a} {_signed(s.effect)} [{_signed(s.ci[0])}, {_signed(s.ci[1])}]"
                          for lab_a, lab_b, s in zip(labels, labels[1:], steps))
    focus_text = ""
    if "focus" in row:
        focus_text = "; " + row["focus"]["classes"] + ": " + "; ".join(
            f"{_signed(s['effect'])} [{_signed(s['ci'][0])}, {_signed(s['ci'][1])}]" for s in row["focus"]["steps"])
    row["ours"] = (f"mean eval mAP over seeds {', '.join(map(str, seeds))} at iteration {iteration}: {text}; "
                   f"paired differences {step_text}{focus_text}" + (f"; {note}" if note else "")
                   + (f"; not run: {', '.join(absent)}" if absent else ""))
    return row


def _arm_mean(arm: Arm, anchor: Arm) -> float:
    seeds = set(arm.runs) & set(anchor.runs)
    runs = [arm.runs[s] for s in seeds] + [anchor.runs[s] for s in seeds]
    it = common_iteration(runs) if runs else None
    if it is None:
        return -1.0
    return float(np.mean([arm.runs[s].eval_at(it)["mAP"] for s in seeds]))


# ---------------------------------------------------------------------------- released checkpoints

RELEASED_DIR = "released"
"""``<run_root>/released/<model>.json``: released checkpoints re-scored (:mod:`panns_core.study.released_eval`)."""
RELEASED_FORMAT = "panns_core.released_result/1"


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


def paired_class_interval(a: dict, b: dict) -> Optional[Interval]:
    """Per-class AP differences b - a (classes with an AP in both), as an :class:`Interval` over classes."""
    pairs = [(k, y - x) for k, (x, y) in enumerate(zip(a["per_class_AP"], b["per_class_AP"]))
             if x is not None and y is not None]
    if len(pairs) < 2:
        return None
    return interval([d for _, d in pairs], [k for k, _ in pairs])


def released_claim(claim: Claim, released: dict) -> dict:
    """One findings row from released-checkpoint scores (:data:`RELEASED_METHOD`)."""
    row = _not_tested(claim.id, claim.claim, claim.paper, claim.evidence_ids, "", method=RELEASED_METHOD,
                      source="released checkpoints")
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
        reason = "no released checkpoint for: " + ", ".join(missing or [chain[-1].label])
        row.update(ours=reason, reason=reason)
        return row
    results = [released[r.name] for r in picked]
    sets = {(r["eval_set"]["num_clips"], r["eval_set"]["sha256"]) for r in results}
    row["evidence"]["runs"] = [f"{RELEASED_DIR}/{r.name}.json" for r in picked]
    if len(sets) > 1:
        reason = "the checkpoints were scored on different eval sets: " + ", ".join(
            f"{r['model']} {r['eval_set']['sha256'][:12]}" for r in results)
        row.update(ours=reason, reason=reason)
        return row
    (num_clips, sha), = sets
    steps = [paired_class_interval(a, b) for a, b in zip(results, results[1:])]
    if any(s is None for s in steps):
        reason = "fewer than two classes with positives in the eval set"
        row.update(ours=reason, reason=reason)
        return row
    verdict = chain_verdict(steps)
    note = ""
    if claim.id == "mobilenets_tradeoff":
        ok, note = _cheaper(picked[0].setting["model"], picked[-1].setting["model"])
        if not ok and verdict == SUPPORTED:
            verdict = INCONCLUSIVE
    k = deciding_step(steps)
    labels = [e.label for e in chain]
    step_text = "; ".join(f"{b} - {a} {_signed(s.effect)} [{_signed(s.ci[0])}, {_signed(s.ci[1])}]"
                          for a, b, s in zip(labels, labels[1:], steps))
    row.update(
        verdict=verdict, reason=None, effect=_r(steps[k].effect), ci=[_r(steps[k].ci[0]), _r(steps[k].ci[1])],
        n_seeds=None, n_classes=steps[k].n, detectable_effect=_r(steps[k].detectable),
        steps=[step_record(f"{a} -> {b}", s) for a, b, s in zip(labels, labels[1:], steps)],
        ours_values={lab: r["mAP"] for lab, r in zip(labels, results)},
        eval_set={"num_clips": num_clips, "sha256": sha},
        design=(f"released checkpoints {' vs '.join(r['model'] for r in results)} scored on one eval copy "
                f"({num_clips} clips, sha256 {sha[:12]}...), {results[-1]['precision']}; the {steps[k].n} classes "
                f"with positives are the replicates."),
        ours=(", ".join(f"{lab} ({r['model']}) {r['mAP']:.3f}" for lab, r in zip(labels, results))
              + f" (released checkpoints, {results[-1]['precision']}; paired per-class differences {step_text}"
              + (f"; {note}" if note else "") + f"; eval set {num_clips} clips, sha256 {sha})"))
    row["steps"] = [{k2: v for k2, v in s.items() if k2 not in ("differences", "replicates")} for s in row["steps"]]
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


def _shot_order(shots) -> list:
    ints = sorted(int(s) for s in set(shots) if str(s).isdigit())
    return [str(s) for s in ints] + (["all"] if "all" in set(map(str, shots)) else [])


def _per_seed(df: pd.DataFrame, strategy: str, shots: str) -> dict:
    """seed -> score of one strategy at one number of shots (the seed's folds averaged)."""
    s = df[(df["strategy"] == strategy) & (df["shots"].astype(str) == shots)]
    return {int(k): float(v) for k, v in s.groupby("seed")["score"].mean().items()}


def _transfer_step(df: pd.DataFrame, better: str, worse: str, shots: str) -> Optional[Interval]:
    b, w = _per_seed(df, better, shots), _per_seed(df, worse, shots)
    seeds = sorted(set(b) & set(w))
    if not seeds:
        return None
    return interval([b[s] - w[s] for s in seeds], seeds)


TRANSFER_CLAIMS = {
    "pretraining_transfer": ("A pretrained PANN fine-tuned beats training from scratch",
                             "; ".join(f"{paper.TRANSFER_TASKS[t][2]}: scratch {v['scratch']:.3f} < fine-tune "
                                       f"{v['finetune']:.3f}" for t, v in paper.TRANSFER.items())),
    "frozen_few_shot": ("With few clips per class the frozen PANN (Freeze_L1) beats fine-tuning; with more clips "
                        "fine-tuning is better",
                        "ESC-50 (Fig. 6) and GTZAN (Fig. 10): with fewer than 10 clips per class the frozen-PANN "
                        "systems are best; with more clips the fine-tuned system is better (no numbers given per "
                        "size in the text)"),
}


def transfer_claims(run_root: str) -> list:
    """Rows ``pretraining_transfer`` and ``frozen_few_shot`` from the transfer results (paired by seed)."""
    results = read_transfer_results(run_root)
    artefacts = ([v[0] for v in paper.TRANSFER_TASKS.values()], [v[1] for v in paper.TRANSFER_TASKS.values()])
    rows = [_not_tested(cid, text, paper_text, ev, "no transfer results in this profile", method=METHOD.replace(
        "score(paper's better arm) - score(paper's worse arm)", "accuracy(paper's better strategy) - "
        "accuracy(paper's worse strategy) at the same number of clips per class"))
        for (cid, (text, paper_text)), ev in zip(TRANSFER_CLAIMS.items(), artefacts)]
    needs = ({"scratch", "finetune"}, {"finetune", "freeze_l1"})
    for row, need in zip(rows, needs):
        tasks = [t for t, df in results.items() if need <= set(df["strategy"].astype(str))]
        if not tasks:
            if results:
                ran = sorted({s for df in results.values() for s in df["strategy"].astype(str)})
                row.update(ours=f"needs {' and '.join(sorted(need))} runs; transfer ran {', '.join(ran)} on "
                                f"{', '.join(sorted(results))}")
                row["reason"] = row["ours"]
            continue
        task = tasks[0]
        df = results[task]
        shots = _shot_order(df["shots"].astype(str))
        if row["id"] == "pretraining_transfer":
            labels = [f"scratch, {shots[-1]} clips/class", f"fine-tune, {shots[-1]} clips/class"]
            steps = [_transfer_step(df, "finetune", "scratch", shots[-1])]
        else:
            if len(shots) < 2:
                row.update(ours=f"{task}: one number of clips per class ({shots[0]}); needs few and many")
                row["reason"] = row["ours"]
                continue
            labels = [f"fine-tune, {shots[0]} clip(s)/class", f"Freeze_L1, {shots[0]} clip(s)/class",
                      f"then fine-tune beats Freeze_L1 at {shots[-1]} clips/class"]
            steps = [_transfer_step(df, "freeze_l1", "finetune", shots[0]),
                     _transfer_step(df, "finetune", "freeze_l1", shots[-1])]
        if any(s is None for s in steps):
            continue
        n = min(s.n for s in steps)
        row["evidence"]["runs"].append(f"transfer/{task}")
        if n < MIN_SEEDS:
            row.update(ours=f"{task}: {n} paired seed(s); a verdict needs {MIN_SEEDS} or more")
            row["reason"] = row["ours"]
            continue
        verdict = chain_verdict(steps)
        k = deciding_step(steps)
        seeds = steps[0].replicates
        folds = sorted(df["fold"].astype(str).unique())
        step_names = [f"{labels[0]} -> {labels[1]}"] + ([labels[2]] if len(steps) > 1 else [])
        row.update(
            verdict=verdict, reason=None, effect=_r(steps[k].effect), ci=[_r(steps[k].ci[0]), _r(steps[k].ci[1])],
            n_seeds=steps[k].n, detectable_effect=_r(steps[k].detectable),
            steps=[step_record(name, s) for name, s in zip(step_names, steps)],
            design=(f"{task}: the reference checkpoint transferred to classes its training data did not hold, "
                    f"strategies {', '.join(sorted(set(df['strategy'].astype(str))))} at "
                    f"{', '.join(shots)} clips per class, seeds {', '.join(map(str, seeds))} for every strategy "
                    f"(paired), test fold(s) {', '.join(folds)}."),
            ours=f"{task}: " + "; ".join(f"{name} {_signed(s.effect)} [{_signed(s.ci[0])}, {_signed(s.ci[1])}]"
                                         for name, s in zip(step_names, steps)) + " (accuracy, paired by seed)")
    return rows


# ---------------------------------------------------------------------------- the file


def compute_findings(run_root: str, reference: Optional[str] = None) -> dict:
    """Every claim's row from the run folders under ``run_root`` (see the module docstring)."""
    runs = read_runs(run_root)
    snapshot = _snapshot(run_root)
    reference = reference or snapshot.get("reference_run")
    reference = reference if reference in runs else None
    dropped = snapshot.get("dropped") or {}
    released = read_released(run_root)
    arms = group_arms(runs)
    rows = []
    for c in CLAIMS:
        row = evaluate_claim(c, runs, reference, dropped, arms)
        if released and row["verdict"] == NOT_TESTED and not row["evidence"]["runs"]:
            row = released_claim(c, released)
        rows.append(row)
    for row in transfer_claims(run_root):
        if row["verdict"] == NOT_TESTED and dropped.get(row["id"]):
            row.update(ours=dropped[row["id"]], reason=dropped[row["id"]])
        rows.append(row)
    costs = arm_costs(run_root, arms)
    cpu = [a["cpu_s"] for a in costs if a["cpu_s"] is not None]
    return {"run_root": os.path.basename(os.path.normpath(run_root)), "reference_run": reference,
            "data_source": snapshot.get("data_source"), "score_rule": SCORE_RULE, "method": METHOD,
            "verdict_rule": VERDICT_RULE, "released_method": RELEASED_METHOD if released else None,
            "released_checkpoints": sorted(released), "min_seeds": MIN_SEEDS,
            "verdicts": {v: sum(r["verdict"] == v for r in rows) for v in VERDICTS},
            "arms": costs, "training_cpu_s": round(sum(cpu), 1) if cpu else None, "rows": rows}


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


FRAME_COLUMNS = ["id", "claim", "verdict", "effect", "ci_low", "ci_high", "n_seeds", "detectable_effect", "design",
                 "paper", "ours", "evidence"]


def findings_frame(source) -> pd.DataFrame:
    """The findings as a table (one row per claim, the columns of :data:`FRAME_COLUMNS`)."""
    data = _load(source)
    rows = [{"id": r["id"], "claim": r["claim"], "verdict": r["verdict"], "effect": r["effect"],
             "ci_low": r["ci"][0], "ci_high": r["ci"][1], "n_seeds": r["n_seeds"],
             "detectable_effect": r["detectable_effect"], "design": r["design"] or r.get("reason"),
             "paper": r["paper"], "ours": r["ours"],
             "evidence": ", ".join(r["evidence"]["artefacts"] + r["evidence"]["runs"])} for r in data["rows"]]
    return pd.DataFrame(rows, columns=FRAME_COLUMNS)


def _cell(value) -> str:
    return str(value).replace("|", "/").replace("\n", " ")


def scope_markdown(source) -> str:
    """What the verdicts do and do not say: data, budget, what a verdict means for AudioSet."""
    data = _load(source)
    cpu = data.get("training_cpu_s")
    if data.get("data_source") == "generated":
        budget = (f" The training runs took {cpu:.0f} CPU seconds in all (one thread each; per arm below)."
                  if cpu else "")
        return ("*Scope.* These verdicts come from short CPU runs on a **generated corpus** (synthetic sounds named "
                "after AudioSet classes), not from AudioSet." + budget + " Each tested claim compares arms trained "
                "with the same seeds on data built so that the claim's mechanism *can* act (e.g. classes whose only "
                "cue lies in 4-8 kHz for the sample rate). *Supported* says the mechanism acts here, at this "
                "budget; *contradicted* says the setting hurt here; *inconclusive* says the design could not tell "
                "an effect smaller than its detectable effect from zero. None of them confirms or refutes the "
                "paper's AudioSet numbers, which are shown for reference only (a different data set: no difference "
                "is computed against them). *Not tested here* names what the claim would need.")
    if data.get("released_checkpoints"):
        return ("*Scope.* Verdicts from the **released checkpoints** re-scored on our copy of the AudioSet eval set "
                "(the classes are the replicates; one checkpoint per system, so training noise is not in the "
                "interval). Claims whose systems were never released are not tested here.")
    return ("*Scope.* Verdicts from this profile's runs and data; they say nothing about AudioSet unless the data "
            "are AudioSet.")


def findings_markdown(source, heading: str = "## Findings", scope: bool = True) -> str:
    """The findings as a Markdown section (scope, counts, method, one table row per claim, CPU per arm).

    ``source``: a run root (computed now from its runs), a ``findings.json`` path or its dict;
    the report and the findings notebook open with it (``scope=False`` when they print
    :func:`scope_markdown` above the forest plot themselves).
    """
    data = _load(source)
    counts = ", ".join(f"{n} {v}" for v, n in data["verdicts"].items())
    lines = [heading, ""] + ([scope_markdown(data), ""] if scope else []) + [
             f"Claims of the paper in the runs of `{data['run_root']}`: {counts}.", "",
             f"*Score.* {data['score_rule']}", "", f"*Effect.* {data['method']}", "",
             f"*Verdict.* {data['verdict_rule']}", ""]
    if data.get("released_method"):
        lines += [f"*Released checkpoints.* {data['released_method']}", ""]
    lines += ["| claim | verdict | effect [95 % CI] | n | detectable | design | paper (AudioSet) | ours | evidence |",
              "|---|---|---|---:|---:|---|---|---|---|"]
    for r in data["rows"]:
        evidence = ", ".join(r["evidence"]["artefacts"] + r["evidence"]["runs"])
        effect = ("–" if r["effect"] is None else
                  f"{_signed(r['effect'])} [{_signed(r['ci'][0])}, {_signed(r['ci'][1])}]")
        n = r["n_seeds"] if r["n_seeds"] is not None else (f"{r['n_classes']} classes" if r.get("n_classes") else "–")
        detect = "–" if r["detectable_effect"] is None else f"{r['detectable_effect']:.3f}"
        lines.append(f"| {_cell(r['claim'])} | **{_cell(r['verdict'])}** | {effect} | {n} | {detect} | "
                     f"{_cell(r['design'] or r.get('reason') or '')} | {_cell(r['paper'])} | {_cell(r['ours'])} | "
                     f"{_cell(evidence)} |")
    arms = [a for a in data.get("arms") or [] if a["cpu_s"] is not None]
    if arms:
        lines += ["", "Training cost per arm (kernel CPU seconds, one thread per run):", "",
                  "| arm | runs | iterations | CPU s |", "|---|---:|---|---:|"]
        lines += [f"| {a['arm']} | {len(a['runs'])} | {', '.join(map(str, a['iterations']))} | {a['cpu_s']:.0f} |"
                  for a in arms]
        lines.append(f"| all | {sum(len(a['runs']) for a in arms)} | | {data['training_cpu_s']:.0f} |")
    return "\n".join(lines) + "\n"


VERDICT_COLOURS = {SUPPORTED: "#009E73", CONTRADICTED: "#D55E00", INCONCLUSIVE: "#555555", NOT_TESTED: "#AAAAAA"}


def forest_plot(source, ax=None):
    """One line per claim: effect and 95 % CI (paper's direction to the right), verdict by colour.

    Claims not tested here are listed with their reason's first words and no interval.
    Returns the figure.
    """
    import matplotlib.pyplot as plt

    data = _load(source)
    rows = data["rows"]
    if ax is None:
        fig, ax = plt.subplots(figsize=(8.5, 0.36 * len(rows) + 1.4))
    else:
        fig = ax.figure
    tested = [r for r in rows if r["effect"] is not None]
    span = max([abs(v) for r in tested for v in (r["ci"][0], r["ci"][1], r["effect"]) if v is not None] + [0.05])
    for y, r in enumerate(reversed(rows)):
        colour = VERDICT_COLOURS[r["verdict"]]
        if r["effect"] is None:
            ax.text(0, y, "not tested here", ha="center", va="center", fontsize=7, color=colour)
            continue
        low, high = r["ci"]
        if low is not None and high is not None:
            ax.plot([low, high], [y, y], color=colour, lw=2)
        ax.plot(r["effect"], y, "o", color=colour, ms=5)
        n = f"n={r['n_seeds']}" if r["n_seeds"] is not None else f"{r.get('n_classes')} classes"
        ax.text(span * 1.08, y, f"{r['verdict']} ({n})", va="center", fontsize=7, color=colour)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([r["claim"] if len(r["claim"]) <= 60 else r["claim"][:57] + "..." for r in reversed(rows)],
                       fontsize=7)
    ax.set_xlim(-span * 1.05, span * 1.05)
    ax.set_ylim(-0.8, len(rows) - 0.2)
    ax.set_xlabel("effect: paired difference in mAP (accuracy for transfer), 95 % CI\n"
                  "<- against the paper | as the paper says ->", fontsize=8)
    ax.annotate("as the paper says", xy=(span * 0.95, len(rows) - 0.4), xytext=(span * 0.35, len(rows) - 0.4),
                fontsize=7, va="center", arrowprops={"arrowstyle": "->", "lw": 0.8})
    ax.set_title(f"Findings of {data['run_root']}: one line per claim", fontsize=9)
    fig.tight_layout()
    return fig


def main(argv=None) -> str:
    p = argparse.ArgumentParser(prog="python -m panns_core.study.findings", description=__doc__.split("\n")[0])
    p.add_argument("run_root", help="runs/<profile>")
    p.add_argument("--reference", help="reference run name (default: the profile's reference_run)")
    args = p.parse_args(argv)
    path = write_findings(args.run_root, args.reference)
    with pd.option_context("display.max_colwidth", 60, "display.width", 200):
        print(findings_frame(path)[["id", "verdict", "effect", "ci_low", "ci_high", "n_seeds"]].to_string(index=False))
    print(f"written {path}")
    return path


if __name__ == "__main__":  # pragma: no cover
    main()
