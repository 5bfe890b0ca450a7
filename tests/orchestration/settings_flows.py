"""A project's own flow module, named by ORCHESTRATION_FLOW_MODULES in test_flow_modules.py."""

from __future__ import annotations

from typing import Any

from orchestration.registry import FlowContext, register_flow


@register_flow("from_a_settings_module")
def from_a_settings_module(ctx: FlowContext) -> dict[str, Any]:
    return {"greeting": "hello"}
