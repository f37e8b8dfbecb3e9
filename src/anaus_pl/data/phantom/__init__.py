"""Simulated B-mode ultrasound written in the public data sets' layouts (the embedded default)."""

from anaus_pl.data.phantom.generate import SIZES, write_phantom

__all__ = ["SIZES", "write_phantom"]
