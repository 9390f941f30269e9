"""A small production environment built on this machine, for the demo and the test suite."""
