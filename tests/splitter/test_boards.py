"""Board files: the built-in boards load, user files extend them, malformed ones fail clearly."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from core.errors import ConfigError, FinnsplitError
from splitter.boards import (
    BUILTIN_DIR,
    DEFAULT_USABLE,
    BoardError,
    BoardFileError,
    UnknownBoardError,
    known_boards,
    load_board,
    parse_board_list,
)
from splitter.cost import Resources

BUILTIN = ["kv260", "pynq-z1", "pynq-z2", "ultra96-v2", "zcu104", "zedboard"]


def test_builtin_boards_are_known_and_load() -> None:
    assert set(BUILTIN) <= set(known_boards())
    for name in BUILTIN:
        board = load_board(name)
        assert board.name == name
        assert board.resources.lut > 0 and board.clock_mhz > 0 and board.nic_gbps > 0
        assert board.available.fits(board.usable)


def test_zedboard_numbers() -> None:
    zed = load_board("Zedboard")  # names are case-insensitive
    assert zed.part == "xc7z020clg484-1" and zed.dsp_block == "DSP48E1"
    assert zed.resources == Resources(lut=53200, ff=106400, bram18=280, uram=0, dsp=220, lutram=17400)
    # usable = total x fraction: LUT 70 %, BRAM 90 % (docs/cost-model.md#bram-limit), DSP 80 %
    assert zed.usable.lut == pytest.approx(37240) and zed.usable.bram18 == pytest.approx(252)
    assert zed.usable.dsp == pytest.approx(176)
    # 1 GbE at 94.9 % TCP goodput: 1e9 * 0.949 / 8 bytes per second
    assert zed.link_bytes_per_s == pytest.approx(118_625_000)
    assert load_board("pynq-z2").part == "xc7z020clg400-1"


def test_finn_board_names() -> None:
    # FINN's pynq_part_map keys; the Zedboard has none (FINN does not know it, docs/finn.md)
    expected = {"pynq-z1": "Pynq-Z1", "pynq-z2": "Pynq-Z2", "ultra96-v2": "Ultra96-V2", "zcu104": "ZCU104",
                "kv260": "KV260_SOM", "zedboard": None}
    assert {name: load_board(name).finn_board for name in expected} == expected


def test_power_model_is_ps_plus_static_plus_dynamic() -> None:
    zed = load_board("zedboard")
    used = Resources(lut=10_000, ff=10_000, bram18=100, dsp=10, lutram=5_000)
    # 1.53 + 0.12 + (10000*0.015 + 10000*0.002 + 100*1.5 + 10*1.0) mW = 1.65 + 0.33 W at 100 MHz
    assert zed.power.watts(used, 100) == pytest.approx(1.98)
    assert zed.power.watts(used, 200) == pytest.approx(1.65 + 0.66)


def test_unknown_board_lists_known_ones() -> None:
    with pytest.raises(UnknownBoardError) as exc:
        load_board("zedbaord")
    assert isinstance(exc.value, FinnsplitError)
    for name in BUILTIN:
        assert name in str(exc.value)


def _write(path: Path, data: object) -> Path:
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def _zed_data() -> dict:
    return yaml.safe_load((BUILTIN_DIR / "zedboard.yaml").read_text())


def test_board_file_by_path_and_search_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _zed_data()
    data["name"] = "myboard"
    data["clock_mhz"] = 150
    data["finn_board"] = None  # same as absent: FINN does not know the board
    del data["usable"]
    path = _write(tmp_path / "myboard.yaml", data)
    board = load_board(str(path))
    assert board.clock_mhz == 150 and board.usable_fraction == DEFAULT_USABLE  # FINN defaults
    assert board.finn_board is None
    monkeypatch.setenv("FINNSPLIT_BOARD_PATH", str(tmp_path))
    assert "myboard" in known_boards()
    assert load_board("myboard").path == str(path)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.pop("part"), "part: expected a non-empty string, found nothing (the field is required)"),
        (lambda d: d.update(clock_mhz="fast"), "clock_mhz: expected a number > 0, found 'fast'"),
        (lambda d: d.update(clock_mhz=0), "clock_mhz: expected a number > 0, found 0"),
        (lambda d: d["resources"].pop("dsp"), "resources.dsp: expected a number >= 0, found nothing"),
        (lambda d: d["resources"].update(lut=-5), "resources.lut: expected a number >= 0, found -5"),
        (lambda d: d["resources"].update(bram=3), "resources.bram: expected a field of resources "
                                                    "(lut, ff, bram18, uram, dsp, lutram), "
                                                    "found unknown field 'bram' (did you mean 'bram18'?)"),
        (lambda d: d["usable"].update(lut=1.5), "usable.lut: expected a number in (0, 1], found 1.5"),
        (lambda d: d.update(family="virtex"), "family: expected one of zynq7000, zynqmp, found 'virtex'"),
        (lambda d: d["power"].pop("ps_w"), "power.ps_w: expected a number >= 0, found nothing"),
        (lambda d: d.update(name="other"), "name: expected 'zedboard' (the file is named zedboard.yaml), "
                                            "found 'other'"),
        (lambda d: d.update(finn_board=""), "finn_board: expected a non-empty string or null, found ''"),
        (lambda d: d.update(finn_board=7), "finn_board: expected a non-empty string or null, found 7"),
        (lambda d: d["shell"].update(lutrm=1), "shell.lutrm: expected a field of shell (lut, ff, bram18, uram, dsp, "
                                               "lutram), found unknown field 'lutrm' (did you mean 'lutram'?)"),
        (lambda d: d.update(iodma_width=64.5), "iodma_width: expected an integer > 0, found 64.5"),
        (lambda d: d.update(clock=100), "clock: expected a field of the top level"),
    ],
)
def test_malformed_board_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, edit, message: str) -> None:
    data = _zed_data()
    edit(data)
    _write(tmp_path / "zedboard.yaml", data)
    monkeypatch.setenv("FINNSPLIT_BOARD_PATH", str(tmp_path))  # shadows the built-in zedboard
    with pytest.raises(BoardFileError) as exc:
        load_board("zedboard")
    assert message in str(exc.value) and str(exc.value).startswith(f"{tmp_path / 'zedboard.yaml'}: ")
    assert isinstance(exc.value, ConfigError) and len(exc.value.problems) == 1


def test_unreadable_board_files(tmp_path: Path) -> None:
    with pytest.raises(BoardFileError, match="no such file"):
        load_board(str(tmp_path / "missing.yaml"))
    with pytest.raises(BoardFileError, match="expected valid YAML, found while parsing"):
        load_board(str(_write(tmp_path / "bad.yaml", "name: [unclosed")))
    with pytest.raises(BoardFileError, match=r"expected a mapping \(name, part, .*\), found a list of 2 items"):
        load_board(str(_write(tmp_path / "list.yaml", "- 1\n- 2\n")))


def test_every_problem_of_a_board_file_at_once(tmp_path: Path) -> None:
    data = _zed_data()
    data.pop("part")
    data["resources"]["lut"] = "many"
    data["power"]["dynamic_mw_at_100mhz"]["dps"] = 1.0
    with pytest.raises(BoardFileError) as exc:
        load_board(str(_write(tmp_path / "zedboard.yaml", data)))
    assert [p.field for p in exc.value.problems] == ["part", "resources.lut", "power.dynamic_mw_at_100mhz.dps"]
    assert len(str(exc.value).splitlines()) == 3


def test_unknown_board_suggests_the_nearest() -> None:
    with pytest.raises(UnknownBoardError, match=r"unknown board 'zedbaord' \(did you mean 'zedboard'\?\)"):
        load_board("zedbaord")


def test_parse_board_list() -> None:
    six = parse_board_list("6")
    assert [b.name for b in six] == ["zedboard"] * 6
    assert [b.name for b in parse_board_list(2, default_board="pynq-z2")] == ["pynq-z2"] * 2
    mixed = parse_board_list("zedboard:4, pynq-z2:2")
    assert [b.name for b in mixed] == ["zedboard"] * 4 + ["pynq-z2"] * 2
    assert [b.name for b in parse_board_list("kv260")] == ["kv260"]


@pytest.mark.parametrize("spec", ["0", "", "zedboard:0", "zedboard:x", ":3", ","])
def test_parse_board_list_errors(spec: str) -> None:
    with pytest.raises(BoardError):
        parse_board_list(spec)


def test_parse_board_list_unknown_name() -> None:
    with pytest.raises(UnknownBoardError, match="known boards"):
        parse_board_list("zedboard:2,nosuchboard:1")
