"""Which extra finnsplit-server flags a `run` command may set, per backend, and within which ranges.

A run command's `args` come from the network: only the flags below pass, each value inside its
range, and the buffers they imply must fit the board's memory budget (`server.max_buffer_mb`):
(queue depth + 2) input buffers and as many output buffers are allocated at start-up
(docs/protocol.md#the-board-server). Everything else, and any flag the agent sets itself, is
refused before the running server is touched.
"""

from __future__ import annotations

from board_agent.run import RunError

# flag: (lowest, highest) for integers, or a tuple of allowed words
COMMON: dict[str, tuple[int, int] | tuple[str, ...]] = {
    "--queue-depth": (1, 32),
    "--io-timeout-ms": (100, 600_000),
    "--connect-timeout-ms": (100, 60_000),
    "--drain-timeout-ms": (0, 60_000),
    "--max-upstreams": (1, 8),
    "--max-handshakes": (1, 64),
    "--handshake-timeout-ms": (100, 60_000),
    "--dead-peer-ms": (1000, 600_000),
    "--stats-interval-ms": (100, 60_000),
    "--log-level": ("debug", "info", "warn", "error"),
    "--order": ("seq", "any"),  # any: downstream of a replicated stage (docs/protocol.md#fan-out-and-merge)
}
PER_BACKEND: dict[str, dict[str, tuple[int, int] | tuple[str, ...]]] = {
    "emulate": {},
    "delay": {"--delay-us": (0, 10_000_000)},
    "finn-zynq": {},
}
DEFAULT_QUEUE_DEPTH = 4


def check_args(args: tuple[str, ...], backend: str, frame_bytes: int, max_buffer_mb: float) -> dict[str, str]:
    """The flags of `args` (`--flag value` or `--flag=value`) as {flag: value}; RunError for anything not allowed.

    `frame_bytes`: one input plus one output frame of the partition, packed.
    """
    allowed = {**COMMON, **PER_BACKEND.get(backend, {})}
    given: dict[str, str] = {}
    words = list(args)
    while words:
        word = words.pop(0)
        flag, eq, value = word.partition("=")
        if not eq:
            if not words:
                raise RunError(f"run: 'args' flag {flag[:40]!r} has no value")
            value = words.pop(0)
        if flag not in allowed:
            raise RunError(f"run: 'args' may not set {flag[:40]!r} for the {backend} backend "
                           f"(allowed: {', '.join(sorted(allowed))})")
        if flag in given:
            raise RunError(f"run: 'args' sets {flag} twice")
        given[flag] = _checked(flag, value, allowed[flag])
    depth = int(given.get("--queue-depth", DEFAULT_QUEUE_DEPTH))
    buffers_mb = (depth + 2) * frame_bytes / 2**20
    if buffers_mb > max_buffer_mb:
        raise RunError(f"run: --queue-depth {depth} needs {buffers_mb:.2f} MB of frame buffers "
                       f"({depth + 2} x {frame_bytes:,} B); this board allows {max_buffer_mb:g} MB "
                       f"(server.max_buffer_mb)")
    return given


def _checked(flag: str, value: str, rule: tuple[int, int] | tuple[str, ...]) -> str:
    if rule and isinstance(rule[0], str):
        if value not in rule:
            raise RunError(f"run: 'args' {flag} must be one of {', '.join(map(str, rule))}, got {value[:40]!r}")
        return value
    low, high = rule  # type: ignore[misc]
    if not value.isdigit() or not low <= int(value) <= high:
        raise RunError(f"run: 'args' {flag} must be an integer in {low}..{high}, got {value[:40]!r}")
    return str(int(value))
