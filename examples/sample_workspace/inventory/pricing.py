"""Price rules: discounts by tag and bulk pricing, applied to items of the store."""

from __future__ import annotations

from dataclasses import dataclass

from inventory.models import Item
from inventory.money import Money


@dataclass(frozen=True)
class TagDiscount:
    """A percentage off every item that carries a tag."""

    tag: str
    percent: int

    def applies_to(self, item: Item) -> bool:
        """True when the item carries this discount's tag."""
        return self.tag in item.tags

    def apply(self, price: Money) -> Money:
        """The price after this discount, rounded down to the cent."""
        return Money(price.cents * (100 - self.percent) // 100, price.currency)


@dataclass(frozen=True)
class BulkPrice:
    """A lower unit price from a minimum number of units."""

    sku: str
    min_units: int
    unit_price: Money

    def applies_to(self, item: Item, units: int) -> bool:
        """True when the bulk price holds for this many units of the item."""
        return item.sku == self.sku and units >= self.min_units


def best_price(item: Item, units: int, discounts: list[TagDiscount], bulk: list[BulkPrice]) -> Money:
    """The lowest total price for units of an item under every rule that applies."""
    candidates = [item.price * units]
    for discount in discounts:
        if discount.applies_to(item):
            candidates.append(discount.apply(item.price) * units)
    for rule in bulk:
        if rule.applies_to(item, units):
            candidates.append(rule.unit_price * units)
    return min(candidates)


def reprice(items: list[Item], discount: TagDiscount) -> list[Item]:
    """Copies of the items with the discount applied where it applies."""
    return [item.with_price(discount.apply(item.price)) if discount.applies_to(item) else item for item in items]
