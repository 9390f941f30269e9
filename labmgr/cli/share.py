"""``labmgr share``, ``labmgr shares``, ``labmgr unshare``: a lab's web application for end users."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import click


@click.command()
@click.argument("lab")
@click.argument("target", metavar="SERVER:PORT")
@click.option("--for", "duration", default="4h", show_default=True, help="how long the links work: 30m, 4h, 2d")
@click.option("--listen", default="127.0.0.1:0", show_default=True,
              help="ADDRESS:PORT of the share's web server (0.0.0.0:8443 for everyone who can reach this machine)")
@click.option("--people", type=int, default=None, help="this many links (person 1, person 2, …)")
@click.option("--names", default=None, help="one link per name: --names alice,bob")
@click.option("--cert", type=click.Path(path_type=Path, dir_okay=False, exists=True), default=None,
              help="TLS certificate (PEM); with --key the share speaks HTTPS")
@click.option("--key", type=click.Path(path_type=Path, dir_okay=False, exists=True), default=None,
              help="the certificate's private key (PEM)")
@click.option("--url", default=None, help="the links' base, when people reach this machine by another name")
def share(lab: str, target: str, duration: str, listen: str, people: int | None, names: str | None,
          cert: Path | None, key: Path | None, url: str | None) -> None:
    """Share SERVER:PORT of LAB (a web application) with people: one expiring link each, a banner
    naming the lab and its point in time, and a sign-off page. Serves until Ctrl+C.
    """
    from ..access.share.serve import serve, start_share

    started = start_share(lab, target, duration, listen, people, names, url, cert, key)
    s = started.share
    host = s.listen.rpartition(":")[0]
    if not cert and not ipaddress.ip_address(host).is_loopback:
        click.echo("labmgr: warning: no --cert: links and pages cross the network unencrypted", err=True)
    click.echo(f"sharing {s.hostname}:{s.port} ({s.ip}) of lab {lab} as share {s.id} on {s.listen} "
               f"until {s.expires_at}; Ctrl+C ends it")
    width = max(len(name) for name in started.links)
    for name, link in started.links.items():
        click.echo(f"  {name:<{width}}  {link}")
    serve(started)
    click.echo(f"share {s.id} of lab {lab} ended")


@click.command()
@click.argument("lab")
def shares(lab: str) -> None:
    """List LAB's open shares and their people."""
    from ..access.share.state import active_shares

    found = active_shares(lab)
    if not found:
        click.echo(f"lab {lab} has no open shares")
    for line in share_lines(found):
        click.echo(line)


def share_lines(found) -> list[str]:
    """One line per share and one per person (lab show uses it too)."""
    from datetime import datetime, timezone

    moment = datetime.now(timezone.utc)
    out = []
    for s in found:
        status = "expired" if s.expired(moment) else f"until {s.expires_at}"
        out.append(f"share {s.id}: {s.hostname}:{s.port} at {s.url} ({status}, pid {s.pid})")
        out += [f"  {p.name}{' (revoked)' if p.revoked else ''}" for p in s.people]
    return out


@click.command()
@click.argument("lab")
@click.argument("share_id", required=False)
@click.option("--person", default=None, help="withdraw only this person's link")
def unshare(lab: str, share_id: str | None, person: str | None) -> None:
    """End LAB's share SHARE_ID (all its shares if none given), or withdraw one person's link."""
    from ..access.share.state import active_shares, end_share, find_share, revoke_person
    from ..errors import LabError

    if person:
        if not share_id:
            raise LabError("--person needs the share's id", hint=f"'labmgr shares {lab}' lists them")
        revoke_person(lab, share_id, person)
        click.echo(f"{person}'s link to share {share_id} of lab {lab} is withdrawn")
        return
    ending = [find_share(lab, share_id)] if share_id else active_shares(lab)
    for s in ending:
        end_share(s)
        click.echo(f"share {s.id} of lab {lab} ended")
    if not ending:
        click.echo(f"lab {lab} has no open shares")
