"""wordbrush: text-to-image models of the DALL·E family in plain PyTorch."""

from .version import __version__

__all__ = ["TextToImagePipeline", "__version__"]


def __getattr__(name: str):
    # imported on first use, so `wordbrush --help` and the dataset tools start without loading torch
    if name == "TextToImagePipeline":
        from .pipeline import TextToImagePipeline

        return TextToImagePipeline
    raise AttributeError(f"module 'wordbrush' has no attribute {name!r}")
