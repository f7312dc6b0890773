"""Corpus readers for other inputs than this project's JSONL folders.

Each reader turns its input into the same ``corpus.Corpus`` that ``corpus.read_corpus``
gives (and so ingest stores, encodes and indexes it the same way): ``instaloader`` reads
folders written by Instaloader, ``tables`` reads CSV or Parquet tables of posts and
accounts. ``common`` holds what they share: naming brands, categories, duplicate and
unknown-account checks, matches derived from tags.
"""
