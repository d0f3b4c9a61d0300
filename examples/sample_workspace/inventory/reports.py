"""Plain-text reports over an inventory store."""

from __future__ import annotations

from inventory.store import InventoryStore


def stock_report(store: InventoryStore) -> str:
    """One line per item: SKU, name, quantity and value."""
    lines = []
    for item in store.items():
        level = store.level(item.sku)
        value = item.price * level.quantity
        lines.append(f"{item.sku:<8} {item.name:<24} {level.quantity:>5} {value}")
    return "\n".join(lines)


def reorder_report(store: InventoryStore) -> str:
    """The SKUs to reorder, with how many units are left."""
    lines = []
    for sku in store.to_reorder():
        level = store.level(sku)
        lines.append(f"{sku:<8} {level.quantity:>5} left (reorder at {level.reorder_at})")
    return "\n".join(lines) or "nothing to reorder"


def movement_report(store: InventoryStore, sku: str) -> str:
    """How many units of one SKU were received and shipped."""
    received = store.log.total("received", sku)
    shipped = store.log.total("shipped", sku)
    return f"{sku}: received {received}, shipped {shipped}"
