"""Runs: the scan, the run folder that holds its tables, their cache keys, plots, summaries and
the ``interp validate`` workflow. Built on the detectors (``interp.heads``); nothing below
imports this package."""
