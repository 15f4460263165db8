"""accounts: a display name on users (GET/PATCH /api/v1/me)

Revision ID: 0003_i18
Revises: 0002
Create Date: 2026-12-01 04:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_i18"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable, no default: adding it rewrites nothing, whatever the size of the table.
    op.add_column("users", sa.Column("name", sa.Text(), nullable=True))
    op.create_check_constraint(op.f("ck_users_name_length"), "users", "length(name) BETWEEN 1 AND 200")


def downgrade() -> None:
    op.drop_constraint(op.f("ck_users_name_length"), "users", type_="check")
    op.drop_column("users", "name")
