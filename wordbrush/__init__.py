"""wordbrush: text-to-image models of the DALL·E family in plain PyTorch."""

__version__ = "0.1.0"
