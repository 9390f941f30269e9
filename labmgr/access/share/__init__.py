"""``labmgr share``: expiring links that show end users one web application of a lab, in their own
browsers, and take their sign-off.

``state.py`` keeps a share's file (people, token hashes, expiry) and finds, revokes and ends shares;
``proxy.py`` carries requests to the one lab server and port through the lab's door; ``app.py`` is
the ASGI application (gate, pages, sign-off); ``journal.py`` writes who did what into the lab's
history; ``serve.py`` starts it all under uvicorn.
"""
