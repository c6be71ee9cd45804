"""Rotation Digest: a weekly US equity rotation newsletter built from market data."""

__version__ = "0.1.0"
