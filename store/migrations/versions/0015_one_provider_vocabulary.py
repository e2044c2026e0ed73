"""One provider vocabulary: stored provider names of the classifier's old list, renamed

The classifier and the analysis now share one list of mailbox providers
(ingest/providers.toml). The classifier used to name AOL apart; AOL mail is run by Yahoo Inc.
and counts under `yahoo`, so events (and the suppression rows that copied their provider)
say so too. Data only.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

# old name -> new name, as of this revision (ingest/providers.toml `formerly`; a test keeps
# the two equal). Kept here, not imported: a migration must not change when the code does.
RENAMED = {'aol': 'yahoo'}
TABLES = ('bounce_events', 'suppression_evidence', 'suppression_holds')


def upgrade() -> None:
    for table in TABLES:
        for old, new in RENAMED.items():
            # On PostgreSQL an UPDATE of the partitioned parent reaches every month.
            op.execute(sa.text(f"UPDATE {table} SET provider = :new WHERE provider = :old")
                       .bindparams(old=old, new=new))


def downgrade() -> None:
    # Left as it is: which `yahoo` rows were `aol` before is not recorded, and the older code
    # takes `yahoo` on an AOL bounce as it is (its rollups counted aol.com under yahoo already).
    pass
