"""The released PANNs checkpoints as data: file names, URLs, checksums and the model each fits.

A data-only table (standard library only) so that both the model registry
(:mod:`panns_core.models.registry`, which names each class's checkpoint) and
:mod:`panns_core.checkpoints` (which downloads and loads the files) read it
without importing each other. Each entry's ``model_name`` is a registered model;
its front end (sample rate, window, mel bins) is that model's default
configuration, ``model_info(model_name).config``.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

ZENODO_RECORD = 3987831
"""Zenodo record of the released PANNs checkpoints (latest version of the record)."""


@dataclass(frozen=True)
class ReleasedCheckpoint:
    """One file of the Zenodo record: where to get it, how to check it, which model reads it."""

    filename: str
    url: str
    model_name: str
    size: int | None = None
    md5: str | None = None


def zenodo_url(filename: str, record: int = ZENODO_RECORD) -> str:
    """Download URL of a file in the Zenodo record (``=`` encoded as ``%3D``, as upstream does)."""
    return f"https://zenodo.org/record/{record}/files/{urllib.parse.quote(filename)}?download=1"


# md5 sums: Cnn6, Cnn10, Cnn14 and MobileNetV1 were given in the project brief.
# The others marked "third-party" were published in public code that loads these
# files (a registry whose Cnn6/Cnn10/Cnn14 values equal the ones above, and for
# DecisionLevelMax two independent projects); they are not from the PANNs authors.
_RELEASED = [
    # (file name, model name, md5)
    ("Cnn14_mAP=0.431.pth", "Cnn14", "541141fa2ee191a88f24a3219fff024e"),
    ("Cnn14_16k_mAP=0.438.pth", "Cnn14_16k", None),
    ("Cnn14_8k_mAP=0.416.pth", "Cnn14_8k", None),
    ("Cnn14_emb512_mAP=0.420.pth", "Cnn14_emb512", None),
    # Upstream spells this one file with capitals (seen in the record's file listing).
    ("CNN14_emb128_mAP=0.412.pth", "Cnn14_emb128", None),
    ("Cnn14_emb32_mAP=0.364.pth", "Cnn14_emb32", None),
    ("Cnn6_mAP=0.343.pth", "Cnn6", "e25e26b84585b14c7754c91e48efc9be"),
    ("Cnn10_mAP=0.380.pth", "Cnn10", "bfb1f1f9968938fa8ef4012b8471f5f6"),
    ("ResNet22_mAP=0.430.pth", "ResNet22", "cf36d413096793c4e15dc752a3abd599"),  # third-party
    ("ResNet38_mAP=0.434.pth", "ResNet38", "bf12f36aaabac4e0855e22d3c3239c1b"),  # third-party
    ("ResNet54_mAP=0.429.pth", "ResNet54", "4f1f1406d37a29e2379916885e18c5f3"),  # third-party
    ("MobileNetV1_mAP=0.389.pth", "MobileNetV1", "a419303e1c88aa1b9d2ac3811563d371"),
    ("MobileNetV2_mAP=0.383.pth", "MobileNetV2", None),
    ("LeeNet11_mAP=0.266.pth", "LeeNet11", None),
    ("LeeNet24_mAP=0.336.pth", "LeeNet24", None),
    ("DaiNet19_mAP=0.295.pth", "DaiNet19", None),
    ("Res1dNet31_mAP=0.365.pth", "Res1dNet31", None),
    ("Res1dNet51_mAP=0.355.pth", "Res1dNet51", None),
    ("Wavegram_Cnn14_mAP=0.389.pth", "Wavegram_Cnn14", "1e3506ab640371e0b5a417b15fd66d21"),  # third-party
    ("Wavegram_Logmel_Cnn14_mAP=0.439.pth", "Wavegram_Logmel_Cnn14",
     "17fa9ab65af3c0eb5ffbc5f65552c4e1"),  # third-party
    ("Cnn14_DecisionLevelMax_mAP=0.385.pth", "Cnn14_DecisionLevelMax",
     "70539c43c18b6a289b3199c503a82c5a"),  # third-party
    ("Cnn14_DecisionLevelAtt_mAP=0.425.pth", "Cnn14_DecisionLevelAtt",
     "c8281ca2b9967244b91d557aa941e8ca"),  # third-party
]

class _FileNameRegistry(dict):
    """A dict of file names that also answers lookups differing only in case.

    Zenodo spells one file ``CNN14_emb128_...`` and the others ``Cnn14_...``;
    code that writes the name either way still finds the entry.
    """

    def _real_key(self, key):
        if isinstance(key, str) and not dict.__contains__(self, key):
            for k in self:
                if k.lower() == key.lower():
                    return k
        return key

    def __missing__(self, key):
        real = self._real_key(key)
        if real is not key and dict.__contains__(self, real):
            return dict.__getitem__(self, real)
        raise KeyError(key)

    def __contains__(self, key):
        return dict.__contains__(self, self._real_key(key))

    def get(self, key, default=None):
        return self[key] if key in self else default


RELEASED_CHECKPOINTS: dict[str, ReleasedCheckpoint] = _FileNameRegistry(
    (filename, ReleasedCheckpoint(filename, zenodo_url(filename), model_name, None, md5))
    for filename, model_name, md5 in _RELEASED
)
"""File name -> :class:`ReleasedCheckpoint` for every file of Zenodo record 3987831
(lookups ignore case)."""


def released_checkpoint(name: str) -> ReleasedCheckpoint:
    """Look up a released checkpoint by file name (any case) or by model name.

    ``"Cnn14"``, ``"Cnn14_mAP=0.431.pth"`` and ``"cnn14_map=0.431.pth"`` all
    give the same entry.
    """
    if name in RELEASED_CHECKPOINTS:
        return RELEASED_CHECKPOINTS[name]
    for ckpt in RELEASED_CHECKPOINTS.values():
        if ckpt.model_name.lower() == name.lower():
            return ckpt
    known = ", ".join(sorted(c.model_name for c in RELEASED_CHECKPOINTS.values()))
    raise KeyError(f"no released checkpoint named {name!r}; known models: {known}")
