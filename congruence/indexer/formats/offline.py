"""Instaloader's structures, read offline.

Instaloader's ``Post`` and ``Profile`` properties fetch a field the saved node lacks from
Instagram (``Post.is_sponsored`` on a node without ``edge_media_to_sponsor_user`` runs a
GraphQL query). Here they run on an ``OfflineContext`` whose every request raises
``NetworkRefused``, and ``known`` turns that (or a field that is simply absent) into None:
what the saved file does not hold is unknown, never downloaded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import requests
from instaloader import InstaloaderContext
from instaloader.exceptions import InstaloaderException

T = TypeVar("T")


class NetworkRefused(RuntimeError):
    """An Instaloader structure tried to reach Instagram (a field missing from its saved node).

    Deliberately not an ``InstaloaderException``: Instaloader catches those in places and
    would fall back to another request."""


def _refuse(*args: Any, **kwargs: Any) -> NoReturn:
    raise NetworkRefused("reading an Instaloader file offline: the saved node lacks this field")


class _NoSession(requests.Session):
    def request(self, *args: Any, **kwargs: Any) -> NoReturn:  # type: ignore[override]
        _refuse()


class OfflineContext(InstaloaderContext):
    """An ``InstaloaderContext`` for ``load_structure_from_file`` that never sends a request."""

    def __init__(self) -> None:
        super().__init__(sleep=False, quiet=True, max_connection_attempts=1, iphone_support=False)
        self._session = _NoSession()

    def get_anonymous_session(self) -> requests.Session:
        return _NoSession()

    get_json = graphql_query = doc_id_graphql_query = graphql_node_list = _refuse  # type: ignore[assignment]
    get_iphone_json = get_raw = get_and_write_raw = head = get_page_data = _refuse  # type: ignore[assignment]
    login = two_factor_login = test_login = _refuse  # type: ignore[assignment]


def known(read: Callable[[], T]) -> T | None:
    """``read()``, or None when the saved node does not hold what it reads (it would have
    gone to the network, or the field is absent or malformed)."""
    try:
        return read()
    # RecursionError: a Profile without 'username' asks for its own username to fetch it
    except (
        NetworkRefused,
        InstaloaderException,
        KeyError,
        IndexError,
        TypeError,
        ValueError,
        AttributeError,
        AssertionError,
        RecursionError,
    ):
        return None
