"""larder: a feature store and feature-engineering toolkit for Python."""

from larder._version import __version__

__all__ = ["__version__"]
