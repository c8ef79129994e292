"""`finnsplit fleet init`: a fleet's broker secrets, made once (orchestrator/control/broker.py, docs/security.md)."""

from __future__ import annotations

from pathlib import Path

import click


@click.group()
def fleet() -> None:
    """Fleet administration: the control plane's identities, ACLs and TLS."""


@fleet.command("init")
@click.option("--fleet", "fleet_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="fleet.yaml: the chain's name, its boards and the broker's host.")
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False),
              help="Where to write the secrets (default: fleet-secrets/ beside fleet.yaml).")
@click.option("--broker-host", "hosts", multiple=True,
              help="Names or addresses the broker is reached by (default fleet.yaml's broker.host); repeatable.")
@click.option("--port", default=8883, show_default=True, help="The broker's TLS port.")
def init(fleet_path: str, out_dir: str | None, hosts: tuple[str, ...], port: int) -> None:
    """Make the fleet's CA, the broker's certificate, per-board and orchestrator passwords, ACLs, mosquitto.conf.

    Run again after adding a board: existing keys and passwords are kept, missing ones are made.
    """
    from orchestrator.control.broker import init_secrets
    from orchestrator.control.fleet import load_fleet

    inventory = load_fleet(fleet_path)
    directory = Path(out_dir) if out_dir else Path(fleet_path).resolve().parent / "fleet-secrets"
    names = [b.name for b in inventory.boards]
    made = init_secrets(directory, inventory.chain, names, list(hosts) or [inventory.broker.host])
    conf = made.broker_dir / "mosquitto.conf"
    conf.write_text(made.mosquitto_conf(inventory.broker.host, port))
    me = made.orchestrator()
    click.echo(f"fleet secrets for chain {inventory.chain} in {made.directory} (keys and passwords 0600)\n")
    click.echo(f"broker: `mosquitto -c {conf}`; the files in {made.broker_dir} must be readable by mosquitto's user\n"
               f"  (chown mosquitto {made.broker_dir}/broker.key {made.broker_dir}/passwd)\n")
    click.echo(f"fleet.yaml:\n  broker: {{host: {inventory.broker.host}, port: {port}, username: {me.username},\n"
               f"           password_file: {me.password_file}, ca_file: {made.ca_file}}}\n")
    click.echo(f"ingress token (finnsplit daemon --ingress; docs/ingress.md): {made.ingress_token_file}\n")
    click.echo("each board (then restart finnsplit-agent):")
    for name in names:
        ident = made.board(name)
        click.echo(f"  {name}: install -m 600 {ident.password_file} /etc/finnsplit/broker.password; "
                   f"install -m 644 {made.ca_file} /etc/finnsplit/ca.crt\n"
                   f"    agent.yaml broker: {{host: {inventory.broker.host}, port: {port}, username: {ident.username}, "
                   "password_file: /etc/finnsplit/broker.password, ca_file: /etc/finnsplit/ca.crt}")
