#!/usr/bin/env python3
"""billsession quickstart: sign in to BILL, make one call, sign out.

Reads the environment:
  BILL_USER, BILL_PASSWORD, BILL_ORG_ID, BILL_DEV_KEY   credentials (required)
  BILL_BASE_URL   API base URL (optional; default: BILL production for the API version)
  BILL_API        2 or 3 (default 3)
  BILL_CA_FILE    PEM file of trusted CAs (optional; default: built-in roots)

Run it against the emulator with:
  scripts/with-emulator.sh -- python examples/python/quickstart.py
"""

from __future__ import annotations

import json
import os
import sys

import billsession


def main() -> int:
    missing = [v for v in ("BILL_USER", "BILL_PASSWORD", "BILL_ORG_ID", "BILL_DEV_KEY") if not os.environ.get(v)]
    if missing:
        print(f"quickstart: set {', '.join(missing)}", file=sys.stderr)
        return 2
    api = int(os.environ.get("BILL_API") or "3")
    if api not in (2, 3):
        print("quickstart: BILL_API must be 2 or 3", file=sys.stderr)
        return 2

    try:
        with billsession.login(
            user_name=os.environ["BILL_USER"],
            password=os.environ["BILL_PASSWORD"],
            org_id=os.environ["BILL_ORG_ID"],
            dev_key=os.environ["BILL_DEV_KEY"],
            api=api,
            base_url=os.environ.get("BILL_BASE_URL") or None,
            ca_file=os.environ.get("BILL_CA_FILE") or None,
        ) as session:
            print(f"signed in (API v{api}); session id {session.id[:4]}…")
            if api == 3:
                reply = session.call("GET", "vendors", params={"max": 20})
            else:
                reply = session.call("POST", "List/Vendor", {})
            print(f"vendors: HTTP {reply.status}", json.dumps(reply.json())[:200])
            session.logout()
            print("logged out")
    except billsession.BillError as e:
        # Messages never contain secrets; e.code is BILL's code (e.g. BDC_1101) when it sent one.
        print(f"quickstart: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
