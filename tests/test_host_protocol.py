"""LocalHost and RemoteHost keep the host layer's one interface (hostbase.Host), parameter for parameter."""

from __future__ import annotations

import inspect

import pytest

from labmgr.hostbase import Host
from labmgr.hosts import LocalHost, host_for
from labmgr.remote.host import RemoteHost

METHODS = [name for name, value in vars(Host).items()
           if callable(value) and (not name.startswith("_") or name in ("__enter__", "__exit__"))]


def parameters(function) -> list[tuple[str, inspect._ParameterKind, object]]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]


def test_the_protocol_names_what_the_layer_is_used_for():
    assert {"run", "put", "mkdir", "remove_tree", "exists", "size", "chmod", "make_traversable",
            "free_bytes"} <= set(METHODS)


@pytest.mark.parametrize("host_class", [LocalHost, RemoteHost])
@pytest.mark.parametrize("method", METHODS)
def test_each_host_has_the_protocols_methods_with_its_parameters(host_class, method):
    assert method in vars(host_class) or hasattr(host_class, method), f"{host_class.__name__} has no {method}"
    assert parameters(getattr(host_class, method)) == parameters(getattr(Host, method))


def test_each_host_says_whether_it_is_remote():
    assert (LocalHost.remote, RemoteHost.remote) == (False, True)


def test_a_local_uri_gives_this_machine():
    with host_for("qemu:///system") as host:
        assert isinstance(host, LocalHost) and host.remote is False
