"""The engagement model: how much attention a post can expect, from its image and caption.

A second product next to the congruence head, with its own labels, features, training and
scoring service; it may use ``training`` (the model lifecycle), ``indexer`` and ``core``,
and nothing below ``api`` imports it.
"""
