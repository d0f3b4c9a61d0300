"""Warehouse inventory: items, stock levels, money and reports."""

from inventory.money import Money
from inventory.models import Item, StockLevel
from inventory.store import InventoryStore

__all__ = ["InventoryStore", "Item", "Money", "StockLevel"]
