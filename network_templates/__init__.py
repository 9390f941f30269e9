"""Jinja2 templates of the libvirt XML labmgr writes (installed as labmgr.network_templates)."""
