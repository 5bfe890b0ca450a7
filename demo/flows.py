"""Python flows used by the demo definitions.

A Python flow does what declarative actions cannot; an autolaunched flow calls it with the
`call` action (`{type: call, name: score_loan}`). It receives the FlowContext (record, inputs,
vars, steps, outputs so far) and returns a dict of outputs, which the calling flow declares in
its `outputs` list. Raising fails the attempt: the step is retried up to its `max_attempts`, then
takes the stage's fault path.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from orchestration.flows import FlowError
from orchestration.registry import FlowContext, register_flow

# Amount bands (upper bound, points): a larger loan carries more risk.
AMOUNT_POINTS: list[tuple[Decimal, int]] = [
    (Decimal(5_000), 10),
    (Decimal(20_000), 25),
    (Decimal(50_000), 45),
    (Decimal(150_000), 70),
]
RISKY_PURPOSES = ("crypto", "gambling", "speculation")


def risk_score(amount: Decimal, purpose: str = "", term_months: int | None = None) -> int:
    """0 (safe) to 100 (risky), from the amount, the purpose and the term."""
    points = next((p for bound, p in AMOUNT_POINTS if amount <= bound), 85)
    if any(word in purpose.lower() for word in RISKY_PURPOSES):
        points += 15
    if term_months and term_months > 60:
        points += 5
    return min(points, 100)


def risk_band(score: int) -> str:
    return "high" if score >= 70 else "medium" if score >= 40 else "low"


@register_flow("score_loan")
def score_loan(ctx: FlowContext) -> dict[str, Any]:
    """Score a loan application: inputs `amount` (decimal), optional `purpose`, `term_months`."""
    raw = ctx.inputs.get("amount")
    try:
        amount = Decimal(str(raw))
    except (InvalidOperation, ValueError):
        raise FlowError(f"score_loan: amount {raw!r} is not a number") from None
    if not amount.is_finite() or amount <= 0:
        raise FlowError(f"score_loan: amount must be positive (got {amount})")
    score = risk_score(amount, str(ctx.inputs.get("purpose") or ""), ctx.inputs.get("term_months"))
    return {"risk_score": score, "risk_band": risk_band(score)}
