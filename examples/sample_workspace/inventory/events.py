"""An append-only log of stock movements, for audits and reports."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone


@dataclass(frozen=True)
class StockEvent:
    """One stock movement: what happened to how many units of which SKU."""

    kind: str
    sku: str
    units: int
    at: datetime | None = None

    def stamped(self) -> StockEvent:
        """Return this event with the current UTC time if it has none."""
        if self.at is not None:
            return self
        return StockEvent(self.kind, self.sku, self.units, datetime.now(timezone.utc))


class EventLog:
    """Stock events in the order they happened."""

    def __init__(self) -> None:
        self._events: list[StockEvent] = []

    def record(self, event: StockEvent) -> None:
        """Append an event, stamping it with the current time."""
        self._events.append(event.stamped())

    def for_sku(self, sku: str) -> list[StockEvent]:
        """All events of one SKU."""
        return [event for event in self._events if event.sku == sku]

    def total(self, kind: str, sku: str) -> int:
        """How many units of a SKU moved in events of one kind."""
        return sum(event.units for event in self._events if event.kind == kind and event.sku == sku)

    def __len__(self) -> int:
        return len(self._events)
