"""EventBridge: one bus per stage (`membership-billing-<stage>`); every platform event is put
on it with source `membership-billing` and detail-type = the event type."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from chalicelib.domain.errors import Unavailable
from chalicelib.domain.platform_events import PlatformEvent

SOURCE = "membership-billing"
MAX_ENTRIES = 10  # PutEvents takes at most 10 entries per call


def bus_name_for(stage: str) -> str:
    return f"membership-billing-{stage}"


class EventBridgeBus:
    def __init__(self, client: Any, bus_name: str) -> None:
        self._client = client
        self.bus_name = bus_name

    def put(self, events: Sequence[PlatformEvent]) -> None:
        """All or raise Unavailable (the publisher then retries the whole change: at least
        once; consumers deduplicate by the event id in `detail.id`)."""
        for start in range(0, len(events), MAX_ENTRIES):
            entries = [
                {
                    "Source": SOURCE,
                    "DetailType": event.type,
                    "Detail": json.dumps(event.body()),
                    "EventBusName": self.bus_name,
                    "Time": event.created_at,
                }
                for event in events[start : start + MAX_ENTRIES]
            ]
            answer = self._client.put_events(Entries=entries)
            if answer.get("FailedEntryCount", 0):
                raise Unavailable("EventBridge refused some events; retrying.")


def ensure_event_bus(client: Any, bus_name: str) -> None:
    """Create the bus if missing (the local stack and tests; CDK owns it in AWS)."""
    names = {bus["Name"] for bus in client.list_event_buses().get("EventBuses", [])}
    if bus_name not in names:
        client.create_event_bus(Name=bus_name)
