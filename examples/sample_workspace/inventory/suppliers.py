"""Suppliers and purchase orders that refill the store."""

from __future__ import annotations

from dataclasses import dataclass, field

from inventory.money import Money
from inventory.store import InventoryStore


@dataclass(frozen=True)
class Supplier:
    """A company that sells us items, with its lead time in days."""

    name: str
    lead_days: int = 7
    skus: frozenset[str] = field(default_factory=frozenset)

    def supplies(self, sku: str) -> bool:
        """True when this supplier sells the SKU."""
        return sku in self.skus


@dataclass
class PurchaseOrder:
    """Units ordered from a supplier, received into the store when they arrive."""

    supplier: Supplier
    lines: dict[str, int] = field(default_factory=dict)
    received: bool = False

    def order(self, sku: str, units: int) -> None:
        """Order units of a SKU from this supplier."""
        if not self.supplier.supplies(sku):
            raise ValueError(f"{self.supplier.name} does not supply {sku}")
        self.lines[sku] = self.lines.get(sku, 0) + units

    def cost(self, store: InventoryStore) -> Money:
        """What the purchase order costs at the store's prices."""
        total = Money(0)
        for sku, units in sorted(self.lines.items()):
            total = total + store.get_item(sku).price * units
        return total

    def receive(self, store: InventoryStore) -> None:
        """Receive every line of the purchase order into the store."""
        if self.received:
            raise ValueError("purchase order already received")
        for sku, units in sorted(self.lines.items()):
            store.receive(sku, units)
        self.received = True


def plan_reorders(store: InventoryStore, suppliers: list[Supplier], units: int = 20) -> list[PurchaseOrder]:
    """One purchase order per supplier for every SKU that needs reordering."""
    orders: dict[str, PurchaseOrder] = {}
    for sku in store.to_reorder():
        for supplier in suppliers:
            if supplier.supplies(sku):
                order = orders.setdefault(supplier.name, PurchaseOrder(supplier))
                order.order(sku, units)
                break
    return [orders[name] for name in sorted(orders)]
