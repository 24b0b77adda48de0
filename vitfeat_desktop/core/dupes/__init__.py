"""Duplicates and similar shots: evidence, verification, keeper, calibration, the staged review."""
