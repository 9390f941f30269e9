"""Labs: a linked-clone copy of production on its own networks, from `lab up` to `lab down`.

`clone.py` decides what a clone changes; `up.py` makes a lab, `teardown.py` removes it (down, gc),
`restore.py` + `pointintime.py` put it at an hour, `probing.py` + `evidence.py` check and sign it off,
`records.py` is its record, `inventory.py` lists it.
"""
