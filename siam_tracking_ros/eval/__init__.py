"""Evaluation toolkit: dataset readers, OPE runner and metrics, plots, synthetic sequences."""
