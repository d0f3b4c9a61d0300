"""Tests of the inventory store."""

from __future__ import annotations

import pytest

from inventory import InventoryStore, Item, Money


def make_store() -> InventoryStore:
    store = InventoryStore()
    store.add_item(Item("A-1", "bolt", Money(25)), quantity=10)
    store.add_item(Item("B-2", "nut", Money(10)), quantity=3)
    return store


def test_ship_returns_value() -> None:
    store = make_store()
    assert store.ship("A-1", 4) == Money(100)
    assert store.level("A-1").quantity == 6


def test_cannot_ship_more_than_stock() -> None:
    store = make_store()
    with pytest.raises(ValueError):
        store.ship("B-2", 4)


def test_reorder() -> None:
    store = make_store()
    assert store.to_reorder() == ["B-2"]


def test_stock_value() -> None:
    store = make_store()
    assert store.stock_value() == Money(280)
