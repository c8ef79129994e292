"""The MQTT topic scheme (docs/control-plane.md#mqtt-topics): one place for the agent, the
orchestrator and the broker's ACLs."""

from __future__ import annotations

ROOT = "finnsplit"


def chain_topic(chain: str, leaf: str) -> str:
    """A chain-wide topic, e.g. finnsplit/<chain>/pipeline."""
    return f"{ROOT}/{chain}/{leaf}"


def chain_filter(chain: str) -> str:
    """Every topic of a chain (the orchestrator's ACL)."""
    return f"{ROOT}/{chain}/#"


def board_prefix(chain: str, name: str | None = None) -> str:
    """finnsplit/<chain>/board, or one board's finnsplit/<chain>/board/<name>."""
    prefix = f"{ROOT}/{chain}/board"
    return prefix if name is None else f"{prefix}/{name}"


def board_topic(chain: str, name: str, leaf: str) -> str:
    """Board `name`'s topic `leaf` (status, cmd, heartbeat, ...)."""
    return f"{board_prefix(chain, name)}/{leaf}"
