"""The demo's example files, shipped inside labmgr as ``labmgr.demo.examples`` (see docs/demo.md)."""
