# Solutions to the exercises of notebooks/01_download_audioset.py (see docs/course.md).

# %%
# Exercise 01.1: labels per clip of a segments CSV
def labels_per_clip(path):
    counts = []
    with open(path) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            labels = line.split(",", 3)[3].strip().strip('"')
            counts.append(len(labels.split(",")))
    return counts
