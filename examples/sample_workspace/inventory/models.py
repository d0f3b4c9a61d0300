"""The records the store keeps: items and their stock levels."""

from __future__ import annotations

from dataclasses import dataclass, field

from inventory.money import Money


@dataclass(frozen=True)
class Item:
    """A sellable item, identified by its SKU."""

    sku: str
    name: str
    price: Money
    tags: frozenset[str] = field(default_factory=frozenset)

    def with_price(self, price: Money) -> Item:
        """Return a copy of this item with another price."""
        return Item(self.sku, self.name, price, self.tags)


@dataclass
class StockLevel:
    """How many units of an item a warehouse holds, and when to reorder."""

    sku: str
    quantity: int = 0
    reorder_at: int = 5

    def needs_reorder(self) -> bool:
        """True when the quantity has fallen to the reorder threshold."""
        return self.quantity <= self.reorder_at

    def add(self, units: int) -> None:
        """Receive units into stock."""
        if units < 0:
            raise ValueError("use remove() to take units out")
        self.quantity += units

    def remove(self, units: int) -> None:
        """Ship units out of stock."""
        if units > self.quantity:
            raise ValueError(f"only {self.quantity} units of {self.sku} in stock")
        self.quantity -= units
