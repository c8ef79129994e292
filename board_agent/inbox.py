"""The agent's command inbox: what it accepts from its `cmd` topic (docs/control-plane.md#commands).

Every message is decoded as a `core.messages.Command`: size-capped and depth-limited before it is
parsed, then shape-checked, its op one of the known ones with arguments of their types. Retained
messages are ignored (a command executes when it is sent, not again on every reconnect).
Each command carries a unique `id` and the orchestrator's clock `ts`; an id seen before is a replay
(or MQTT's QoS-1 redelivery) and a `ts` older than the newest accepted command by more than
`max_age_s` is stale. Both are refused, judged by the orchestrator's clock alone, so a board
without a real-time clock (a Zedboard) is not affected by its own clock.
"""

from __future__ import annotations

import collections

from board_agent.config import CommandPolicy
from core.errors import FinnsplitError
from core.messages import BadRequest, Command
from core.safe_json import MessageError


class CommandRefused(FinnsplitError):
    """A message the agent will not execute; `cid` is its id if it had a usable one."""

    def __init__(self, why: str, cid: str | None = None, reply: bool = True) -> None:
        super().__init__(why)
        self.cid = cid
        self.reply = reply  # False: nobody is waiting for an answer (a retained message)


class CommandInbox:
    """Accepts or refuses raw `cmd` messages; remembers recent ids. Not thread safe (the agent's loop)."""

    def __init__(self, policy: CommandPolicy) -> None:
        """An empty inbox."""
        self.policy = policy
        self._seen: collections.OrderedDict[str, float] = collections.OrderedDict()  # id -> ts, oldest first
        self._newest: float | None = None

    def accept(self, payload: object, retained: bool) -> Command:
        """The command in `payload`, or CommandRefused saying why not."""
        if retained:
            raise CommandRefused("a retained message on cmd (commands are never retained; ignored)", reply=False)
        try:
            cmd = Command.decode(payload, self.policy.max_bytes)
        except BadRequest as exc:  # an unknown op or a bad argument: refused after the replay rules, as any command
            self._admit(exc.cid, exc.ts)
            raise CommandRefused(str(exc), exc.cid) from None
        except MessageError as exc:
            raise CommandRefused(f"malformed command: {exc}") from None
        self._admit(cmd.id, cmd.ts)
        return cmd

    def _admit(self, cid: str, ts: float) -> None:
        """Refuse a replayed or stale id, else remember it."""
        if cid in self._seen:
            raise CommandRefused(f"replayed command: id {cid!r} was already received", cid)
        if self._newest is not None and ts < self._newest - self.policy.max_age_s:
            raise CommandRefused(f"stale command: sent {self._newest - ts:.0f} s before the newest command "
                                 f"(limit {self.policy.max_age_s:g} s)", cid)
        self._remember(cid, ts)

    def _remember(self, cid: str, ts: float) -> None:
        self._seen[cid] = ts
        self._newest = ts if self._newest is None else max(self._newest, ts)
        horizon = self._newest - self.policy.max_age_s
        # ids older than the horizon are refused as stale anyway; the cap bounds memory under a flood
        while self._seen and (len(self._seen) > self.policy.remember or next(iter(self._seen.values())) < horizon):
            self._seen.popitem(last=False)
