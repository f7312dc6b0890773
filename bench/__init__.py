"""Benchmarks for congruence: ingest throughput, match latency, FAISS vs pgvector.

Run ``python -m bench [--quick] [--only SECTION] [--out bench/results/NAME.json]``.
Absolute times on a shared machine are noisy, so every section also reports a ratio
against a baseline measured in the same process.
"""
