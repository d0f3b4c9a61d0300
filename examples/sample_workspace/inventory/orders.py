"""Customer orders: lines of SKUs and quantities, priced and shipped through the store."""

from __future__ import annotations

from dataclasses import dataclass, field

from inventory.money import Money
from inventory.store import InventoryStore


class OrderError(ValueError):
    """Raised when an order cannot be priced or shipped."""


@dataclass(frozen=True)
class OrderLine:
    """One line of an order: how many units of which SKU."""

    sku: str
    units: int

    def __post_init__(self) -> None:
        if self.units <= 0:
            raise OrderError(f"an order line needs at least one unit, got {self.units}")


@dataclass
class Order:
    """A customer order, open until it is shipped."""

    order_id: str
    customer: str
    lines: list[OrderLine] = field(default_factory=list)
    shipped: bool = False

    def add_line(self, sku: str, units: int) -> None:
        """Add units of a SKU to the order."""
        if self.shipped:
            raise OrderError(f"order {self.order_id} is already shipped")
        self.lines.append(OrderLine(sku, units))

    def units(self) -> int:
        """How many units the order holds in all."""
        return sum(line.units for line in self.lines)

    def total(self, store: InventoryStore) -> Money:
        """The price of the whole order at the store's current prices."""
        total = Money(0)
        for line in self.lines:
            total = total + store.get_item(line.sku).price * line.units
        return total

    def ship(self, store: InventoryStore) -> Money:
        """Ship every line from the store and return the value shipped."""
        if self.shipped:
            raise OrderError(f"order {self.order_id} is already shipped")
        for line in self.lines:
            if store.level(line.sku).quantity < line.units:
                raise OrderError(f"not enough {line.sku} in stock for order {self.order_id}")
        value = Money(0)
        for line in self.lines:
            value = value + store.ship(line.sku, line.units)
        self.shipped = True
        return value
