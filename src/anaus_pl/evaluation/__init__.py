"""Downstream k-fold evaluation: folds, metrics and reports."""
