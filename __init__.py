"""ggctl: the GourmetGram deployment toolkit."""

__version__ = "0.1.0"
