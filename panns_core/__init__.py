"""panns_core: a tested reproduction of PANNs (Kong et al., 2020)."""

__version__ = "0.1.0"
