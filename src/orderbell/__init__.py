"""Order Bell: tells restaurant guests and staff where their order is."""

__version__ = "0.1.0"
