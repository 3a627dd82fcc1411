"""cairn: a content-addressable artifact store and registry with many protocol faces."""

__version__ = "0.1.0"
__all__ = ["__version__"]
