"""AudioSet data: metadata, acquisition, packing, resampling, reading, generated corpus.

Submodules are imported lazily by callers (``from panns_core.data.pack import ...``)
so that importing the package stays cheap in DataLoader workers.
"""

from panns_core.data.audioset import read_class_labels, read_qa_true_counts, read_segments_csv  # noqa: F401
