"""The wordbrush version: written into every saved model's config.json."""

__version__ = "0.1.0"
