"""The one-page HTML report and the environment record.

The report is a notebook (``notebooks/19_build_report.ipynb``) that reads
``runs/<profile>/manifest.json`` and shows every table (its Markdown file) and
figure (its PNG) under its paper id; the pipeline executes it and converts it
with nbconvert, without code cells and with images embedded, so
``runs/<profile>/report.html`` is a single self-contained file.
"""

from __future__ import annotations

import base64
import html
import json
import os
import platform
import sys

from panns_core import __version__
from panns_core.study.artefacts import ARTEFACT_IDS

GENERATED_LABEL = "generated-corpus results, not paper-scale numbers"


def environment_info() -> dict:
    """Versions, cores and accelerator: what a reader needs to judge timings and numbers."""
    import numpy
    import torch

    info = {
        "panns_core": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda_available": torch.cuda.is_available(),
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "numpy": numpy.__version__,
    }
    for name in ("torchlibrosa", "librosa", "h5py", "pandas", "matplotlib", "papermill", "sklearn"):
        try:
            module = __import__(name)
            info[name] = getattr(module, "__version__", "?")
        except ImportError:
            info[name] = None
    return info


def read_manifest(run_root: str) -> dict:
    path = os.path.join(os.fspath(run_root), "manifest.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no manifest (run the pipeline's manifest stage first)")
    with open(path) as f:
        return json.load(f)


def data_label(data_source: str, label: str = "") -> str:
    """What the numbers are: a generated-corpus run is never presented as paper-scale."""
    if label:
        return label
    if data_source == "generated":
        return GENERATED_LABEL
    return "AudioSet results"


def header_markdown(manifest: dict, data_source: str, label: str = "") -> str:
    counts = manifest.get("counts", {})
    lines = [
        f"# PANNs, reproduced: profile `{manifest.get('profile')}`",
        "",
        f"**{data_label(data_source, label)}.**",
        "",
        f"* data source: **{data_source}**",
        f"* artefacts produced: {counts.get('produced', 0)} of {counts.get('expected', len(ARTEFACT_IDS))}",
        f"* generated: {manifest.get('created')} by panns_core {manifest.get('package_version')}",
    ]
    if data_source == "generated":
        lines += ["", "The generated corpus is a small synthetic AudioSet-shaped data set: it checks that every "
                  "stage runs and how settings rank on an easy task. Its mAP values are not comparable with "
                  "the paper's AudioSet numbers; the paper columns are shown for orientation only."]
    return "\n".join(lines)


def artefact_markdown(artefact_id: str, entry: dict, root: str = ".") -> str:
    """A table's Markdown (read from its .md file) with its provenance line."""
    md_path = next((p for p in entry["paths"] if p.endswith(".md")), None)
    body = ""
    if md_path:
        with open(os.path.join(root, md_path)) as f:
            body = f.read()
    return f"## {artefact_id}\n\n{body}\n\n{provenance_line(entry)}"


def provenance_line(entry: dict) -> str:
    meta = entry.get("meta") or {}
    parts = [f"sources: {len(entry.get('sources', []))} run file(s)"]
    sha = meta.get("eval_set_sha256")
    if sha:
        parts.append(f"eval-set sha256: `{sha if isinstance(sha, str) else ', '.join(sha)}`"[:120])
    if meta.get("data_source"):
        parts.append(f"data: {meta['data_source']}")
    return "*" + "; ".join(parts) + "*"


def missing_markdown(manifest: dict) -> str:
    missing = manifest.get("missing") or {}
    skipped = manifest.get("not_in_profile") or {}
    note = (f"\n\nNot in this profile (their notebooks are not listed): {', '.join(skipped)}." if skipped else "")
    if not missing:
        return "All artefacts of this profile were produced." + note
    rows = ["| id | why missing |", "|---|---|"]
    rows += [f"| {k} | {html.escape(str(v)).replace('|', '/')} |" for k, v in missing.items()]
    return "## Missing artefacts\n\n" + "\n".join(rows) + note


def notebook_to_html(executed_notebook: str, html_path: str) -> str:
    """Convert an executed notebook to one self-contained HTML page without code cells."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(executed_notebook, as_version=4)
    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nb)
    from panns_core.fsutil import write_text

    write_text(html_path, body)
    return html_path


def image_html(png_path: str, caption: str = "", width: str = "100%") -> str:
    """An inline (base64) image, so the report keeps working when moved alone."""
    with open(png_path, "rb") as f:
        data = base64.b64encode(f.read()).decode()
    cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return f'<figure><img style="max-width:{width}" src="data:image/png;base64,{data}"/>{cap}</figure>'


def evaluation_markdown(run_root: str) -> str:
    """Stage 04's whole-eval-set scores (``runs/<profile>/evaluate/*.json``) as a Markdown table."""
    folder = os.path.join(os.fspath(run_root), "evaluate")
    if not os.path.isdir(folder):
        return ""
    rows = []
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".json"):
            continue
        with open(os.path.join(folder, name)) as f:
            r = json.load(f)
        fmt = lambda v: "–" if v is None else f"{v:.3f}"  # noqa: E731
        rows.append(f"| {r.get('run')} | {r.get('split')} | {r.get('num_clips', '–')} | {fmt(r.get('mAP'))} | "
                    f"{fmt(r.get('mAUC'))} | {fmt(r.get('d_prime'))} | `{str(r.get('eval_set_sha256', ''))[:16]}…` |")
    if not rows:
        return ""
    return ("## Whole eval-set evaluation (stage 04, best-on-validation checkpoint)\n\n"
            "| run | split | clips | mAP | AUC | d' | eval-set sha256 |\n|---|---|---:|---:|---:|---:|---|\n"
            + "\n".join(rows))
