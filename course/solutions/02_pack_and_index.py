# Solutions to the exercises of notebooks/02_pack_and_index.py (see docs/course.md).

# %%
# Exercise 02.1: log-mel from the power spectrogram
def logmel_by_hand(power, mel_weights):
    """power: (1, 1, frames, 513) tensor, mel_weights: (513, 64) array -> (1, 1, frames, 64) tensor."""
    mel_power = power @ torch.as_tensor(mel_weights)
    return 10 * torch.log10(torch.clamp(mel_power, min=1e-10))
