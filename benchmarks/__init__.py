"""Benchmarks: model table (size/speed vs the paper's baselines), pipeline breakdown, quality.

``python -m benchmarks pipeline`` / ``models`` / ``all`` prints Markdown tables.
"""
