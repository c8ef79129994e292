"""The shared vocabulary at the bottom of the stack: standard library and numpy (docs/architecture.md).

Board agents stand on this package alone; splitter/, orchestrator/ and board_agent/ import it,
and it imports none of them.
"""
