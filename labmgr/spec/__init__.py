"""The environment spec: what production looks like, validated with file:line errors."""

from .model import Environment, Network, Nic, Server
from .load import load_environment

__all__ = ["Environment", "Network", "Nic", "Server", "load_environment"]
