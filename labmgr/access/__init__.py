"""The door into a lab: an access network namespace on the hypervisor host, and what uses it
(``labmgr ssh``, ``labmgr forward``)."""
