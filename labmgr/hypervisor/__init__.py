"""The one small layer through which labmgr reaches libvirt.

``connect(uri)`` gives a ``Hypervisor``; domains and networks come from it;
``GuestAgent`` talks to the QEMU guest agent of a running domain. Every libvirt
error leaves this layer as a ``HypervisorError`` that says what to do.
"""

from .agent import ExecResult, GuestAgent
from .connection import Hypervisor, connect
from .domain import Domain

__all__ = ["Domain", "ExecResult", "GuestAgent", "Hypervisor", "connect"]
