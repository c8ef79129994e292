"""`python -m board_agent --config agent.yaml` (console script finnsplit-agent): run a board's agent."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from board_agent.agent import BoardAgent
from board_agent.config import AgentConfig, ConfigError, load_config

EXIT_CONFIG = 2  # systemd's RestartPreventExitStatus: restarting cannot fix a bad config


def main(argv: list[str] | None = None) -> int:
    """Run the agent until SIGTERM or SIGINT; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="finnsplit-agent", description=__doc__)
    parser.add_argument("--config", required=True, help="the agent's YAML config (docs/control-plane.md#board-agent)")
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        cfg = load_config(args.config)
        cfg.broker.client_options()  # the password file and CA certificate are readable, or exit 2 now
    except ConfigError as exc:  # one line per problem of the file (docs/config.md)
        for line in str(exc).splitlines():
            print(f"finnsplit-agent: {line}", file=sys.stderr)
        return EXIT_CONFIG
    asyncio.run(serve(cfg))
    return 0


async def serve(cfg: AgentConfig) -> None:
    """Run a BoardAgent until SIGTERM or SIGINT, then shut it down cleanly."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await BoardAgent(cfg).run(stop)


if __name__ == "__main__":
    sys.exit(main())
