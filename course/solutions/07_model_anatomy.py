# Solutions to the exercises of notebooks/07_model_anatomy.py (see docs/course.md).

# %%
# Exercise 07.1: multiply-accumulates of block 1's two convolutions
def block1_macs(frames, mel_bins):
    outputs = frames * mel_bins * 64  # values per convolution output: 64 channels over the whole image
    return outputs * (3 * 3 * 1) + outputs * (3 * 3 * 64)
