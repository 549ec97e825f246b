"""Calls django-eventstream's send_event() the way an origin view would.

Usage: send_events.py CHANNEL
Environment: VALKEY_PORT (read by bridge_settings).
Prints one JSON line per event sent, with what the edge should deliver.
"""

import json
import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bridge_settings")

import django  # noqa: E402

django.setup()

from django_eventstream import send_event  # noqa: E402

channel = sys.argv[1]
progress = {"pct": 42, "stage": "scan", "items": [1, 2.5, None], "note": "caf\u00e9 \"quoted\""}
send_event(channel, "scan.progress", progress)
# json_encode=False: the app passes text it formatted itself.
send_event(channel, "scan.note", "plain text, not JSON", json_encode=False)
send_event(channel, "scan.completed", {"ok": True}, async_publish=False)
print(json.dumps({"sent": 3}))
