"""The subscription tiers and their monthly AI-operation limits: the one place these figures live.

The schema's defaults (common/tables.py), the quota check's fallback for a user with no
subscription (common/queries/users.py) and the dashboard's cost metrics all read them here.
"""

from __future__ import annotations

FREE_TIER = "free"  # a user with no subscription row
UNLIMITED = -1
TIER_LIMITS = {FREE_TIER: 100, "pro": 1000, "enterprise": UNLIMITED}
