"""Remote hypervisors: the SSH login a libvirt URI means (``uri``), host keys (``trust``), and the
host's machine over SSH (``host.RemoteHost``, imported where needed: it needs fabric)."""

from .uri import SshTarget, is_remote, parse_target

__all__ = ["SshTarget", "is_remote", "parse_target"]
