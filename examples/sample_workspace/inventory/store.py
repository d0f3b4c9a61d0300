"""The in-memory inventory store: the single place that changes stock."""

from __future__ import annotations

from collections.abc import Iterator

from inventory.events import EventLog, StockEvent
from inventory.models import Item, StockLevel
from inventory.money import Money


class UnknownItem(KeyError):
    """Raised when a SKU is not in the store."""


class InventoryStore:
    """Items, their stock levels and the log of every stock movement."""

    def __init__(self) -> None:
        self._items: dict[str, Item] = {}
        self._levels: dict[str, StockLevel] = {}
        self.log = EventLog()

    def add_item(self, item: Item, quantity: int = 0, reorder_at: int = 5) -> None:
        """Register a new item with its opening stock."""
        self._items[item.sku] = item
        self._levels[item.sku] = StockLevel(item.sku, quantity, reorder_at)
        self.log.record(StockEvent("opened", item.sku, quantity))

    def get_item(self, sku: str) -> Item:
        """Return the item with this SKU."""
        try:
            return self._items[sku]
        except KeyError:
            raise UnknownItem(sku) from None

    def level(self, sku: str) -> StockLevel:
        """Return the stock level of this SKU."""
        try:
            return self._levels[sku]
        except KeyError:
            raise UnknownItem(sku) from None

    def receive(self, sku: str, units: int) -> None:
        """Receive units of an item into stock."""
        self.level(sku).add(units)
        self.log.record(StockEvent("received", sku, units))

    def ship(self, sku: str, units: int) -> Money:
        """Ship units of an item and return what they are worth."""
        self.level(sku).remove(units)
        self.log.record(StockEvent("shipped", sku, units))
        return self.get_item(sku).price * units

    def items(self) -> Iterator[Item]:
        """Iterate over all items, sorted by SKU."""
        for sku in sorted(self._items):
            yield self._items[sku]

    def to_reorder(self) -> list[str]:
        """SKUs whose stock has fallen to their reorder threshold."""
        return [sku for sku, level in sorted(self._levels.items()) if level.needs_reorder()]

    def stock_value(self) -> Money:
        """The value of everything in stock."""
        total = Money(0)
        for sku, level in self._levels.items():
            total = total + self.get_item(sku).price * level.quantity
        return total
