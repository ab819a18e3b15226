"""Studies: matched models trained and measured side by side."""

from .compare import CompareSettings, compare

__all__ = ["CompareSettings", "compare"]
