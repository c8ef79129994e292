"""MobileNetV1-w4a4 on 6 Zedboards: predicted pipeline fps of the greedy (paper) vs balanced split.

Usage: .venv/bin/python benchmarks/split.py [--model zoo|synthetic|PATH.onnx] [--boards 6] [--board zedboard]

--model zoo (default when brevitas is installed) exports the zoo MobileNetV1 and lowers it;
synthetic builds the same layer chain from shapes (splitter.cost.synthetic). Everything printed is
measured or predicted in this run; nothing is quoted from elsewhere except the paper's 118.3 fps.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from core.packing import packed_size
from splitter.boards import load_board, parse_board_list
from splitter.cost.synthetic import mobilenet_v1_w4a4
from splitter.folding import finn_set_folding
from splitter.partition import PartitionError, Plan, TooFewBoardsError, plan
from splitter.report import format_plan

PAPER_FPS = 118.3  # reference paper: MobileNetV1 w4a4 on 6 Zedboards, measured


def load_model(kind: str):
    """(layers, tensors, description) of the model to split; swap the model here."""
    if kind == "synthetic":
        layers, tensors = mobilenet_v1_w4a4()
        return layers, tensors, "MobileNetV1-w4a4, synthetic chain (splitter.cost.synthetic)"
    from splitter.load import load_and_lower

    if kind == "zoo":
        from splitter import zoo

        path = zoo.export("mobilenet-v1-w4a4", Path(tempfile.mkdtemp()) / "mobilenet-v1-w4a4.onnx")
    else:
        path = Path(kind)
    _, graph = load_and_lower(str(path), None)
    return graph.layers, graph.tensors, f"{path.name}, lowered by splitter.lowering"


def default_model() -> str:
    try:
        import brevitas  # noqa: F401
    except ImportError:
        return "synthetic"
    return "zoo"


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def greedy_on(layers, tensors, count: int, board: str, folds) -> tuple[Plan | None, int]:
    """Greedy plan on `count` boards, or None and the number of boards it needs."""
    try:
        return plan(layers, tensors, parse_board_list(str(count), board), "greedy", greedy_foldings=folds), count
    except TooFewBoardsError as exc:
        return None, exc.needed[board]


def set_folding_per_board(layers, tensors, balanced: Plan) -> list[tuple[int, float, bool, str]]:
    """FINN's SetFolding on each of the balanced plan's partitions at the plan's rate: (index, fps, fits, why)."""
    from splitter.cost import layer_cost, partition_resources

    rows = []
    for p in balanced.partitions:
        part = layers[p.start:p.stop]
        folds = finn_set_folding(part, p.board, tensors, int(p.board.clock_hz / balanced.fps * p.replicas))
        costs = [layer_cost(x, f, p.board, tensors) for x, f in zip(part, folds, strict=True)]
        res = partition_resources(costs, p.board)
        over = res.overflows(p.board.usable)
        fps = p.replicas * p.board.clock_hz / max(c.cycles for c in costs)
        rows.append((p.index, fps, not over, "; ".join(str(o) for o in over)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=default_model(), help="zoo, synthetic, or a QONNX file")
    parser.add_argument("--boards", type=int, default=6)
    parser.add_argument("--board", default="zedboard")
    args = parser.parse_args()

    (layers, tensors, what), load_s = timed(load_model, args.model)
    board = load_board(args.board)
    boards = parse_board_list(str(args.boards), args.board)
    print(f"model: {what}: {len(layers)} layers (loaded in {load_s:.1f} s)")
    print(f"boards: {args.boards} x {board.name} ({board.part}, {board.clock_mhz:g} MHz, "
          f"{board.link_bytes_per_s * 8 / 1e6:.0f} Mbit/s link)\n")

    balanced, balanced_s = timed(plan, layers, tensors, boards, "balanced")
    print(f"balanced on {args.boards}: {balanced.fps:.1f} fps, no plan faster than {balanced.fps_bound:.1f} fps "
          f"(gap {100 * balanced.gap:.1f}%; split in {balanced_s:.1f} s wall time)")
    print(format_plan(balanced))

    print("\ngreedy = the paper's method: fixed folding, fill boards in order until a resource overflows")
    try:
        plan(layers, tensors, boards, "greedy")
        print("  FINN default folding (PE=SIMD=1): fits")
    except PartitionError as exc:
        print(f"  FINN default folding (PE=SIMD=1): {exc}")
    # finn_set_folding equals FINN v0.10.1's own SetFolding node for node (tests/finn/test_finn_flow.py)
    folds = finn_set_folding(layers, board, tensors, int(board.clock_hz / PAPER_FPS))
    (greedy, needed), greedy_s = timed(greedy_on, layers, tensors, args.boards, args.board, folds)
    print(f"  FINN SetFolding(target {PAPER_FPS} fps, two-pass) + fill in order: ", end="")
    if greedy is None:
        print(f"does not fit {args.boards} boards, needs {needed}")
        greedy, _ = greedy_on(layers, tensors, needed, args.board, folds)
    else:
        print(f"fits (split in {greedy_s:.3f} s)")
    assert greedy is not None
    print(format_plan(greedy))

    print(f"\nFINN's SetFolding per board: each balanced partition folded by SetFolding at {balanced.fps:.1f} fps")
    for index, fps, fits, why in set_folding_per_board(layers, tensors, balanced):
        print(f"  partition {index}: {fps:8.1f} fps, {'fits' if fits else 'does not fit: ' + why}")

    same, same_s = timed(plan, layers, tensors, parse_board_list(str(needed), args.board), "balanced")
    print(f"\nbalanced on {needed} (greedy's board count): {same.fps:.1f} fps (split in {same_s:.1f} s)")
    first = tensors[layers[0].input]
    ceiling = board.link_bytes_per_s / packed_size(first.num_elements, first.dtype)
    print("\nsummary (predicted fps; the paper measured 118.3 fps on 6 Zedboards):")
    print(f"  greedy   on {needed}: {greedy.fps:8.1f} fps")
    ratio = balanced.fps / greedy.fps
    print(f"  balanced on {args.boards}: {balanced.fps:8.1f} fps   ratio balanced/greedy = {ratio:.2f}"
          f" (with {needed - args.boards} fewer boards)")
    if needed != args.boards:
        print(f"  balanced on {needed}: {same.fps:8.1f} fps   ratio at equal board count = {same.fps / greedy.fps:.2f}")
    print(f"  physical ceiling: the client's one NIC carries {first.num_elements:,} {first.dtype} input values "
          f"per frame at {ceiling:.0f} fps; balanced reaches {balanced.fps / ceiling:.2f} of it")
    print(f"  balanced split wall time on {args.boards} boards: {balanced_s:.1f} s")


if __name__ == "__main__":
    main()
