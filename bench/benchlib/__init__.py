"""Pieces of bench/compare.py: the roofline probe, model and kernel timings
against the peers, and the report (tables, plots, docs/PERF.md section)."""
