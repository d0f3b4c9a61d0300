"""Import items and stock from CSV, export the stock report as CSV."""

from __future__ import annotations

import csv
import io

from inventory.models import Item
from inventory.money import Money
from inventory.store import InventoryStore

FIELDS = ["sku", "name", "price", "quantity", "reorder_at", "tags"]


def load_store(text: str) -> InventoryStore:
    """A store with one item per CSV row (columns as in FIELDS)."""
    store = InventoryStore()
    for row in csv.DictReader(io.StringIO(text)):
        tags = frozenset(tag for tag in row.get("tags", "").split(";") if tag)
        item = Item(row["sku"], row["name"], Money.from_str(row["price"]), tags)
        store.add_item(item, int(row.get("quantity") or 0), int(row.get("reorder_at") or 5))
    return store


def dump_store(store: InventoryStore) -> str:
    """The store's items and stock levels as CSV text."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    for item in store.items():
        level = store.level(item.sku)
        writer.writerow(
            {
                "sku": item.sku,
                "name": item.name,
                "price": f"{item.price.cents // 100}.{item.price.cents % 100:02d}",
                "quantity": level.quantity,
                "reorder_at": level.reorder_at,
                "tags": ";".join(sorted(item.tags)),
            }
        )
    return out.getvalue()
