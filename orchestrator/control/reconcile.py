"""The orchestrator's planner: from observed board states and the target pipeline to typed steps.

Pure functions over plain data (no brokers, no SSH), as balena-supervisor's planner: the daemon
observes, calls `plan_steps`, executes the steps through its executor table, and observes again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from core.manifest import Partition


@dataclass(frozen=True)
class StagePlan:
    """One board's place in the target: a bundle partition (one of its replicas) and the board type it needs."""

    partition: int
    board_type: str
    replica: int = 0  # which of a replicated partition's boards
    slot: int | None = None  # the assignment key: the position in Target.stages (None: the partition index)

    @property
    def key(self) -> int:
        """This stage's key in an assignment (stage -> board)."""
        return self.partition if self.slot is None else self.slot


@dataclass(frozen=True)
class Target:
    """What should run: a bundle's stages in order (a replicated partition's replicas side by side),
    and where the last one sends its results."""

    bundle: str
    stages: tuple[StagePlan, ...]
    result_address: str  # "host:port" of the client's result port

    def partitions(self) -> list[list[StagePlan]]:
        """The stages grouped by partition, in pipeline order."""
        groups: list[list[StagePlan]] = []
        for stage in self.stages:
            if groups and groups[-1][0].partition == stage.partition:
                groups[-1].append(stage)
            else:
                groups.append([stage])
        return groups


def target_of(bundle: str, partitions: Sequence[Partition], result_address: str) -> Target:
    """The target for a manifest's partitions: one stage per board, replicas included."""
    stages = []
    for part in partitions:
        for replica in range(part.replicas):
            stages.append(StagePlan(part.index, part.board, replica, len(stages)))
    return Target(bundle, tuple(stages), result_address)


@dataclass(frozen=True)
class BoardView:
    """What the orchestrator knows of one board of the fleet."""

    name: str
    board_type: str
    data_address: str  # "host:port" where its server listens
    alive: bool = False  # status online and heartbeats fresh
    state: str = "lost"  # the agent's status state
    bundle: str | None = None  # running bundle, partition and next hop (None when idle)
    partition: int | None = None
    next_hop: str | None = None
    deployed: frozenset[tuple[str, int]] = frozenset()  # (bundle, partition) uploaded and verified
    failed: bool = False  # the orchestrator gave up on this board (e.g. deployment failed)
    heard: bool = True  # its agent has reported at least once (False: not started yet, or unreachable)


# ---- steps -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Deploy:
    """Upload a partition's files to a board."""

    board: str
    bundle: str
    partition: int


@dataclass(frozen=True)
class Prestage:
    """Upload a partition's files to an idle spare ahead of a failure (the pipeline keeps running)."""

    board: str
    bundle: str
    partition: int


@dataclass(frozen=True)
class Run:
    """Start (or re-point) a board's server for a partition, sending to `next_hop` ("host:port", or
    a comma-separated list: the replicas of the next stage, docs/protocol.md#fan-out-and-merge)."""

    board: str
    bundle: str
    partition: int
    next_hop: str


@dataclass(frozen=True)
class Stop:
    """Stop a board's server (it runs something the target does not need)."""

    board: str


@dataclass(frozen=True)
class Degraded:
    """A stage has no live board of its type: the pipeline cannot run until one comes back.

    `waiting`: boards of that type exist whose agents have never reported (still starting):
    the stage waits for them, it has not lost a board.
    """

    partition: int
    board_type: str
    why: str
    waiting: bool = False


Step = Deploy | Prestage | Run | Stop | Degraded


@dataclass
class Decision:
    """The planner's answer: the stage -> board assignment to keep, and the steps to take now."""

    assignment: dict[int, str]
    steps: list[Step] = field(default_factory=list)

    @property
    def degraded(self) -> list[Degraded]:
        """Stages that cannot run."""
        return [s for s in self.steps if isinstance(s, Degraded)]

    @property
    def settled(self) -> bool:
        """True when the pipeline runs as planned (at most spares are being prepared)."""
        return all(isinstance(s, Prestage) for s in self.steps)


def assign(target: Target, boards: Mapping[str, BoardView], previous: Mapping[int, str]) -> tuple[dict, list]:
    """Stage -> board: keep live previous choices, fill the rest with free live boards of the right type
    (in fleet order, preferring boards that already hold the stage's files)."""
    usable = {n for n, b in boards.items() if b.alive and not b.failed}
    assignment: dict[int, str] = {}
    taken: set[str] = set()
    for stage in target.stages:
        name = previous.get(stage.key)
        if name in usable and boards[name].board_type == stage.board_type and name not in taken:
            assignment[stage.key] = name
            taken.add(name)
    missing = []
    for stage in target.stages:
        if stage.key in assignment:
            continue
        free = [n for n in boards if n in usable and n not in taken and boards[n].board_type == stage.board_type]
        # Prefer a board that already holds this partition's files (no upload on failover).
        free.sort(key=lambda n: (target.bundle, stage.partition) not in boards[n].deployed)
        if free:
            assignment[stage.key] = free[0]
            taken.add(free[0])
        else:
            alive = sum(1 for b in boards.values() if b.board_type == stage.board_type and b.alive and not b.failed)
            unheard = sum(1 for n, b in boards.items()
                          if b.board_type == stage.board_type and not b.heard and not b.failed and n not in taken)
            if unheard:
                missing.append(Degraded(stage.partition, stage.board_type,
                                        f"waiting for the agent of a {stage.board_type} ({unheard} not heard from yet)",
                                        waiting=True))
            else:
                missing.append(Degraded(stage.partition, stage.board_type,
                                        f"no free live {stage.board_type} ({alive} alive, all in use)"))
    return assignment, missing


def plan_steps(target: Target, boards: Mapping[str, BoardView], previous: Mapping[int, str]) -> Decision:
    """The steps that move the fleet toward `target`: deploys, then runs from the last stage to the first."""
    assignment, missing = assign(target, boards, previous)
    decision = Decision(assignment, list(missing))
    if missing:
        return decision
    for stage in target.stages:
        name = assignment[stage.key]
        if (target.bundle, stage.partition) not in boards[name].deployed:
            decision.steps.append(Deploy(name, target.bundle, stage.partition))
    # every replica of a partition sends to all replicas of the next one (fan-out), the last to the client
    groups = target.partitions()
    hops = [",".join(boards[assignment[s.key]].data_address for s in group) for group in groups[1:]]
    for group, nxt in reversed(list(zip(groups, [*hops, target.result_address], strict=True))):
        for stage in group:
            name = assignment[stage.key]
            b = boards[name]
            if (b.state, b.bundle, b.partition, b.next_hop) != ("running", target.bundle, stage.partition, nxt):
                decision.steps.append(Run(name, target.bundle, stage.partition, nxt))
    used = set(assignment.values())
    for name, b in sorted(boards.items()):
        if name not in used and b.alive and b.state in ("running", "starting"):
            decision.steps.append(Stop(name))
    if not decision.steps:
        decision.steps.extend(_prestage(target, boards, used))
    return decision


def _prestage(target: Target, boards: Mapping[str, BoardView], used: set[str]) -> list[Prestage]:
    """Every idle live spare gets the files of every stage of its type, so a failover needs no upload."""
    steps = []
    for name, b in boards.items():
        if name in used or not b.alive or b.failed:
            continue
        steps.extend(Prestage(name, target.bundle, s.partition) for s in target.stages
                     if s.board_type == b.board_type and (target.bundle, s.partition) not in b.deployed)
    return steps
