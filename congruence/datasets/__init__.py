"""Datasets the demo, the tests and the benchmarks share: corpus builders and synthetic vectors.

Each builder writes through ``congruence.indexer.corpus_write.write_corpus``; builders of
real data (``../shared/data``) take its path as an argument. Imports only
``congruence.indexer`` and ``congruence.core``.
"""
