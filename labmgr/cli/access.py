"""``labmgr console``, ``labmgr ssh``, ``labmgr forward``: logging in to a lab's servers."""

from __future__ import annotations

import os
import shutil
import signal

import click

from ..errors import LabError


@click.command(context_settings={"ignore_unknown_options": False})
@click.argument("lab")
@click.argument("server")
def console(lab: str, server: str) -> None:
    """Attach to SERVER's serial console in LAB (through libvirt: works with no network at all).

    Leave it with Ctrl+].
    """
    from ..access.console import console_argv

    argv = console_argv(lab, server)
    if shutil.which(argv[0]) is None:
        raise LabError("virsh is not installed", hint="apt install libvirt-clients")
    os.execvp(argv[0], argv)


@click.command()
@click.argument("lab")
@click.argument("server")
@click.argument("command", nargs=-1)
@click.option("-l", "--user", default=None, help="log in as this user (default: ssh's)")
@click.option("-p", "--port", default=22, show_default=True, help="the server's SSH port")
@click.option("-i", "--identity", default=None, help="private key file (ssh -i)")
@click.option("-o", "--option", "options", multiple=True, help="an ssh_config option, e.g. -o BatchMode=yes")
def ssh(lab: str, server: str, command: tuple[str, ...], user: str | None, port: int, identity: str | None,
        options: tuple[str, ...]) -> int:
    """Log in to SERVER of LAB (its name, production hostname or IP) with OpenSSH, from the lab's door.

    Put a command after -- to run it: labmgr ssh LAB db01 -- systemctl status postgresql
    """
    from ..access import login

    extra = list(options) + ([f"IdentityFile={identity}", "IdentitiesOnly=yes"] if identity else [])
    return login.ssh(lab, server, user=user, port=port, options=extra, command=list(command))


@click.command()
@click.argument("lab")
@click.argument("target", metavar="SERVER:PORT")
@click.option("--listen", default="127.0.0.1:0", show_default=True,
              help="where to listen on this machine's loopback (port 0: any free port)")
def forward(lab: str, target: str, listen: str) -> None:
    """Forward a port on this machine's loopback to SERVER:PORT in LAB, until interrupted.

    e.g. labmgr forward shop-1 app01:80 --listen 127.0.0.1:8080, then browse http://127.0.0.1:8080/
    """
    from ..access import login

    forwarder, server, port = login.forward(lab, target, listen)
    host, bound = forwarder.address
    click.echo(f"forwarding {host}:{bound} -> {server.server.hostname} ({server.ip}:{port}) in lab {lab}; "
               "Ctrl+C stops", nl=True)
    if port == 22:      # the host key checked against the lab's known_hosts, as labmgr ssh does
        from ..access.ssh import checking_options
        from ..lab import records
        from ..lab.guestchannel import known_hosts_path

        checks = " ".join(f"-o {o}" for o in checking_options(str(known_hosts_path(records.load(lab)))))
        click.echo(f"  ssh -p {bound} -o HostKeyAlias={server.server.hostname} {checks} {host}")
    signal.signal(signal.SIGTERM, lambda *_: forwarder.stop())
    try:
        forwarder.serve_forever()
    except KeyboardInterrupt:
        forwarder.stop()
