"""fmops: foundation models for the first mile, distilled specialists for the last mile."""

__version__ = "0.1.0"
