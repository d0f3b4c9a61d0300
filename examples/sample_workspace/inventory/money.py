"""Money as integer cents with a currency, so sums never drift."""

from __future__ import annotations

from dataclasses import dataclass


class CurrencyMismatch(ValueError):
    """Raised when two amounts in different currencies are combined."""


@dataclass(frozen=True, order=True)
class Money:
    """An amount of money in cents."""

    cents: int
    currency: str = "EUR"

    @classmethod
    def from_str(cls, text: str, currency: str = "EUR") -> Money:
        """Parse '12.34' into Money(1234)."""
        whole, _, frac = text.strip().partition(".")
        frac = (frac + "00")[:2]
        sign = -1 if whole.startswith("-") else 1
        return cls(sign * (abs(int(whole or "0")) * 100 + int(frac)), currency)

    def _check(self, other: Money) -> None:
        if other.currency != self.currency:
            raise CurrencyMismatch(f"{self.currency} != {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._check(other)
        return Money(self.cents + other.cents, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._check(other)
        return Money(self.cents - other.cents, self.currency)

    def __mul__(self, factor: int) -> Money:
        return Money(self.cents * factor, self.currency)

    def __str__(self) -> str:
        sign = "-" if self.cents < 0 else ""
        cents = abs(self.cents)
        return f"{sign}{cents // 100}.{cents % 100:02d} {self.currency}"
