"""A partition whose board's agent has not reported yet is shown as waiting, not DEGRADED: in the
daemon's log, the pipeline state it publishes, and `finnsplit status` (real broker, no agents)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from agent_fixtures import Broker
from test_daemon_robust import one_board_orchestrator

FINNSPLIT = [sys.executable, "-c", "from cli.main import main; main()"]


def test_a_board_never_heard_from_is_waited_for_everywhere(tmp_path: Path) -> None:
    broker = Broker(tmp_path)
    try:
        log: list[str] = []
        fleet_path, orch = one_board_orchestrator(tmp_path, broker, log)

        async def scenario() -> None:
            stop = asyncio.Event()
            task = asyncio.create_task(orch.run(stop))
            await asyncio.wait_for(orch.link.connected.wait(), 10)
            for _ in range(100):  # until the waiting state is published (retained)
                if orch._published is not None and orch._published.state == "waiting":
                    break
                await asyncio.sleep(0.1)
            stop.set()
            await asyncio.wait_for(task, 10)

        asyncio.run(scenario())
        assert orch.state == "waiting", log
        assert any("partition 0: waiting for the agent" in line for line in log), log
        assert not any("DEGRADED" in line for line in log), log
        shown = subprocess.run([*FINNSPLIT, "status", "--fleet", str(fleet_path), "--wait", "1"],
                               capture_output=True, text=True, check=False)
        assert shown.returncode == 0, shown.stderr
        rows = [line.split() for line in shown.stdout.splitlines()]
        assert ["zed0", "zedboard", "waiting", "unknown", "-", "heard", "never"] in rows, shown.stdout
        assert "pipeline waiting:" in shown.stdout and "DEGRADED" not in shown.stdout, shown.stdout
    finally:
        broker.stop()
