"""A fleet-mode child process for test_fleet.py (not a test module).

Signs in with the account and shared store named by the BILL_* environment
variables, prints ``ID <session id>``, and holds the session until its stdin
closes. A STORE_DOWN event is printed as ``STORE-DOWN <detail>``.
"""

from __future__ import annotations

import os
import sys

import billsession
from billsession import Event, EventKind


def on_event(event: Event) -> None:
    if event.kind == EventKind.STORE_DOWN:
        print(f"STORE-DOWN {event.detail}", flush=True)


def main() -> None:
    with billsession.login(
        user_name=os.environ["BILL_USER"],
        password=os.environ["BILL_PASSWORD"],
        org_id=os.environ["BILL_ORG_ID"],
        dev_key=os.environ["BILL_DEV_KEY"],
        base_url=os.environ["BILL_BASE_URL"],
        shared_store=os.environ["BILL_SHARED_STORE"],
        store_key_prefix=os.environ.get("BILL_STORE_KEY_PREFIX"),
        store_timeout=5.0,  # generous for a busy machine; the default is 0.25 s
        on_event=on_event,
    ) as s:
        print(f"ID {s.id}", flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
