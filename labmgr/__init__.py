"""labmgr: isolated replica labs of libvirt production environments."""

__version__ = "0.1.0"
