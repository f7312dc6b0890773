"""The engine of a one-shot command (match, similar, export, explain, status)."""

from __future__ import annotations

from congruence.core.settings import Settings
from congruence.indexer.index import IndexCorrupt
from congruence.indexer.publish import NotPublished
from congruence.search.engine import Engine
from congruence.training.deploy import publish_current


def open_engine(settings: Settings, publish: bool = True) -> Engine:
    """A command is its own writer first: it publishes the store as it is (cheap when the
    publication is current; an index missing or stale is rebuilt), then opens the read-only
    engine on it; a published index found damaged when loaded is rebuilt once.
    ``publish=False`` (status) publishes only when nothing is published yet, so that it can
    report a stale index rather than repair it."""
    if publish:
        publish_current(settings)
    try:
        return Engine(settings)
    except NotPublished:
        if publish:
            raise
        publish_current(settings)
    except IndexCorrupt:
        publish_current(settings, verify=True)
    return Engine(settings)
