"""evaluations.harness: the harness version that measured each evaluation

Timing changed between harness versions (version 4 keeps the host's launch out of the
events and warms the GPU before each timed call), so speedups recorded by different
versions are not comparable; the leaderboard says when runs mix them. Rows recorded
before this revision keep NULL: their version is unknown.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: Union[str, Sequence[str], None] = "0001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


# Plain ALTER TABLE, not batch mode: batch mode rebuilds the SQLite table, which other
# tables' foreign keys forbid; SQLite has ADD COLUMN, and DROP COLUMN since 3.35.
def upgrade() -> None:
    op.add_column("evaluations", sa.Column("harness", sa.String(length=16), nullable=True))


def downgrade() -> None:
    op.drop_column("evaluations", "harness")
