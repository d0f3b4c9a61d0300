"""Tests of orders, suppliers and pricing."""

from __future__ import annotations

import pytest

from inventory import InventoryStore, Item, Money
from inventory.orders import Order, OrderError
from inventory.pricing import BulkPrice, TagDiscount, best_price
from inventory.suppliers import Supplier, plan_reorders


def make_store() -> InventoryStore:
    store = InventoryStore()
    store.add_item(Item("A-1", "bolt", Money(25), frozenset({"metal"})), quantity=10)
    store.add_item(Item("B-2", "nut", Money(10)), quantity=3)
    return store


def test_order_total_and_ship() -> None:
    store = make_store()
    order = Order("o-1", "acme")
    order.add_line("A-1", 2)
    order.add_line("B-2", 1)
    assert order.total(store) == Money(60)
    assert order.ship(store) == Money(60)
    assert store.level("A-1").quantity == 8


def test_order_cannot_ship_twice() -> None:
    store = make_store()
    order = Order("o-2", "acme", shipped=True)
    with pytest.raises(OrderError):
        order.ship(store)


def test_plan_reorders() -> None:
    store = make_store()
    supplier = Supplier("nuts-inc", skus=frozenset({"B-2"}))
    orders = plan_reorders(store, [supplier])
    assert [order.lines for order in orders] == [{"B-2": 20}]


def test_best_price() -> None:
    item = Item("A-1", "bolt", Money(25), frozenset({"metal"}))
    discounts = [TagDiscount("metal", 20)]
    bulk = [BulkPrice("A-1", 100, Money(15))]
    assert best_price(item, 10, discounts, bulk) == Money(200)
    assert best_price(item, 100, discounts, bulk) == Money(1500)
