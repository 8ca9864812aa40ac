"""Benchmarks: model table (size/speed vs the paper's baselines), pipeline breakdown, quality.

``python -m benchmarks pipeline`` / ``models`` / ``all`` prints Markdown tables.
"""
from smilecore.offline import no_telemetry

no_telemetry()  # (onnxruntime keeps and sends no usage events: smilecore/offline.py)

