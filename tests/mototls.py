"""moto's S3 server over https, for clients that want a TLS close_notify before the connection ends.

Run as ``python mototls.py HOST PORT CERT KEY``. werkzeug ends every response with
"Connection: close" and closes the socket without a TLS close_notify; OpenSSL 3
clients that read to the end of the stream (pgBackRest) take that for a truncation
("unexpected eof while reading") and retry forever. Here each connection says
close_notify before it is closed.
"""

import sys

from moto.moto_server.threaded_moto_server import MotoRequestHandler
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple


class ClosingHandler(MotoRequestHandler):
    def finish(self) -> None:
        super().finish()
        try:
            self.connection.settimeout(1)
            self.connection.unwrap()
        except (OSError, ValueError):
            pass


if __name__ == "__main__":
    host, port, cert, key = sys.argv[1:5]
    run_simple(host, int(port), DomainDispatcherApplication(create_backend_app), threaded=True,
               ssl_context=(cert, key), request_handler=ClosingHandler)
