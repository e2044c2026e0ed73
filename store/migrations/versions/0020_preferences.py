"""preferences

No schema change: the preference centre's scopes (topic:<name>, frequency:<N>d, sunset) are
values of suppressions.scope. The revision stays because databases already record it.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06
"""

revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
