# Solutions to the exercises of notebooks/00_environment_and_data.py (see docs/course.md).

# %%
# Exercise 00.1: frames of a centred STFT
def log_mel_frames(seconds, sample_rate=32000, hop_size=320):
    return int(seconds * sample_rate) // hop_size + 1
