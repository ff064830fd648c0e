"""What model calls cost: the price table (``ORCH_LLM_PRICES``, USD per million tokens in and
out, per model) and the cost of one call."""

from __future__ import annotations

import math
from dataclasses import dataclass

from loguru import logger


@dataclass(frozen=True)
class Price:
    in_per_million: float
    out_per_million: float


def parse_prices(text: str) -> dict[str, Price]:
    """``gpt-4o-mini=0.15/0.60,gpt-4o=2.5/10`` -> prices; a ``ValueError`` naming the setting."""
    prices: dict[str, Price] = {}
    for entry in filter(None, (e.strip() for e in text.split(","))):
        model, eq, pair = entry.partition("=")
        given, slash, taken = pair.partition("/")
        try:
            price = Price(float(given), float(taken)) if eq and slash and model.strip() else None
        except ValueError:
            price = None
        if price is None or not all(math.isfinite(v) and v >= 0 for v in
                                    (price.in_per_million, price.out_per_million)):
            raise ValueError(f"ORCH_LLM_PRICES: {entry!r} is not MODEL=IN/OUT (USD per million"
                             " tokens, e.g. gpt-4o-mini=0.15/0.60)")
        prices[model.strip()] = price
    return prices


class PriceTable:
    def __init__(self, prices: dict[str, Price]) -> None:
        self.prices = prices
        self._unpriced: set[str] = set()

    def cost_usd(self, model: str, tokens_in: int, tokens_out: int) -> float:
        price = self.prices.get(model)
        if price is None:
            if model not in self._unpriced:
                self._unpriced.add(model)
                logger.warning("model {} has no price in ORCH_LLM_PRICES: its calls cost 0",
                               model)
            return 0.0
        return (tokens_in * price.in_per_million + tokens_out * price.out_per_million) / 1e6
