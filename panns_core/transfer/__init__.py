"""Transfer learning to the paper's six tasks (and the user's own data).

* :mod:`.datasets`: ESC-50, DCASE 2019 Task 1, DCASE 2018 Task 2, MSoS, GTZAN,
  RAVDESS: sources with checksums, layout parsers, the paper's protocols.
* :mod:`.folder`: a generic labelled folder (audio + ``filename,label[,fold]`` CSV).
* :mod:`.synthetic`: tiny stand-ins in each dataset's exact on-disk layout.
* :mod:`.audio`: decode once to 32 kHz mono; clip / segment geometry.
* :mod:`.strategies`: scratch, finetune, freeze_l1, freeze_l3; embedding cache.
* :mod:`.runner`: train + evaluate one (task, strategy, fold, subset, seed).
* :mod:`.fewshot`: score vs clips per class over seeds; result files.
* :mod:`.report`: the paper-vs-ours tables and the few-shot figures.
* :mod:`.finetune`: ``panns finetune``: data-fitted defaults, progress, report folder, checkpoint.

Fine-tune a PANN on a folder of your own audio (report + ``model.pth`` in ``runs/mine``)::

    from panns_core.transfer import finetune
    run = finetune("my_sounds/labels.csv", "runs/mine", strategy="finetune", checkpoint="Cnn14_mAP=0.431.pth")
"""

from panns_core.transfer.audio import ClipAudio
from panns_core.transfer.base import (CROSS_VALIDATION, HOLDOUT, Clip, DatasetLayoutError, TransferData,
                                      check_disjoint)
from panns_core.transfer.datasets import TASK_KEYS, TASKS, download_task, parse_task, task_info
from panns_core.transfer.fewshot import parse_shots, run_curves, shot_subset, summarise, write_results
from panns_core.transfer.folder import parse_folder
from panns_core.transfer.runner import TransferConfig, TransferRunner
from panns_core.transfer.strategies import STRATEGIES, EmbeddingCache
from panns_core.transfer.synthetic import make_standin
from panns_core.transfer.api import fine_tune_folder, load_task
from panns_core.transfer.finetune import FinetuneInterrupted, FinetuneResult, data_clip_seconds, finetune

__all__ = [
    "CROSS_VALIDATION", "FinetuneInterrupted", "FinetuneResult", "HOLDOUT", "Clip", "ClipAudio", "DatasetLayoutError", "EmbeddingCache", "STRATEGIES",
    "TASKS", "TASK_KEYS", "TransferConfig", "TransferData", "TransferRunner", "check_disjoint",
    "data_clip_seconds", "download_task", "fine_tune_folder", "finetune", "load_task", "make_standin", "parse_folder", "parse_shots",
    "parse_task", "run_curves", "shot_subset", "summarise", "task_info", "write_results",
]
