"""Every model module, imported once, so that `Base.metadata` holds the whole schema.

Alembic's environment and the tests read the metadata from here; a new model module is
added to this list.
"""
from store import (alerts, checks, dmarc_sources, engagement, models, mta_logs, provider_stats, rollups,  # noqa: F401
                   suppressions, volume, webhooks)
from store.models import Base

metadata = Base.metadata
