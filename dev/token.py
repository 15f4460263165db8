"""Mint tokens for local use: a user's bearer token, or a task's progress-callback token.

python -m dev.token [EMAIL]            # HS256 user token signed with JWT_SECRET
python -m dev.token --callback TASK_ID  # callback token signed with STEP_SIGNING_SECRET
"""

from __future__ import annotations

import argparse
import time

import jwt

from common.auth import issue_callback_token
from common.config import Settings, load_settings

DEMO_EMAIL = "demo@planter.dev"


def user_token(email: str = DEMO_EMAIL, hours: float = 12, settings: Settings | None = None) -> str:
    """A user token for ``settings`` (this process's environment by default)."""
    settings = settings or load_settings()
    now = int(time.time())
    claims = {"email": email, "sub": f"dev|{email}", "iat": now, "exp": now + int(hours * 3600)}
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("email", nargs="?", default=DEMO_EMAIL)
    parser.add_argument("--callback", metavar="TASK_ID", help="mint a progress-callback token for this task")
    parser.add_argument("--hours", type=float, default=12)
    args = parser.parse_args()
    if args.callback:
        print(issue_callback_token(args.callback, load_settings(), time.time()))
    else:
        print(user_token(args.email, args.hours))


if __name__ == "__main__":
    main()
