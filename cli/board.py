"""`finnsplit board install`: the agent and the server onto boards over SSH (orchestrator/deployment/)."""

from __future__ import annotations

from pathlib import Path

import click


@click.group()
def board() -> None:
    """Set up boards: install or upgrade the board agent, finnsplit-server and the systemd unit."""


@board.command("install")
@click.argument("names", nargs=-1)
@click.option("--fleet", "fleet_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="fleet.yaml: the boards' addresses, SSH keys and remote_root (where the agent is installed).")
@click.option("--secrets", type=click.Path(exists=True, file_okay=False),
              help="`finnsplit fleet init`'s directory: also write each board's agent.yaml, password and CA.")
@click.option("--wheels", type=click.Path(exists=True, file_okay=False),
              help="Wheels of the agent's dependencies for the boards (default: downloaded for each board).")
@click.option("--online", is_flag=True, help="The board's own pip fetches the dependencies from its index.")
@click.option("--etc-dir", default="/etc/finnsplit", show_default=True, help="The agent's config on the board.")
@click.option("--systemd-dir", default="/etc/systemd/system", show_default=True, help="Where the unit goes.")
@click.option("--no-enable", is_flag=True, help="Write the unit but do not enable or (re)start it.")
@click.option("--arch", type=click.Choice(["x86_64", "armv7l", "aarch64"]),
              help="Install this architecture's server whatever the board's uname -m says (testing, with --launcher).")
@click.option("--launcher", help="A command the agent runs the server under, e.g. 'qemu-arm-static -L "
                                 "/usr/arm-linux-gnueabihf' (an x86 test host; never on a board).")
def install(names: tuple[str, ...], fleet_path: str, secrets: str | None, wheels: str | None, online: bool,
            etc_dir: str, systemd_dir: str, no_enable: bool, arch: str | None, launcher: str | None) -> None:
    """Install or upgrade the agent and finnsplit-server on the boards NAMES (all of the fleet's by default).

    A board gets only core + board_agent (aiomqtt and PyYAML; no numpy, onnx or torch) in a venv under
    its remote_root, the server built for its architecture (x86_64, armv7l, aarch64) and the unit
    (docs/board-setup.md).
    """
    from orchestrator.control.fleet import load_fleet
    from orchestrator.deployment.board_install import InstallOptions, install_many

    if online and wheels:
        raise click.UsageError("--online and --wheels exclude each other")
    opts = InstallOptions(etc_dir=etc_dir, systemd_dir=systemd_dir, enable=not no_enable,
                          secrets=Path(secrets) if secrets else None, wheels=Path(wheels) if wheels else None,
                          online=online, arch=arch, launcher=launcher)
    done = install_many(load_fleet(fleet_path), list(names), opts, click.echo)
    for item in done:
        click.echo(f"{item.board}: {item.arch}, Python {item.python}: {' '.join(item.agent_argv)}")
