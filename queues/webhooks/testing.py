"""A webhook receiver for tests and `bench_events`: a loopback HTTP server (http.server in a thread) that verifies every
POST's signature with `standardwebhooks` and answers a status the caller sets."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook as Verifier
from standardwebhooks.webhooks import WebhookVerificationError


class Receiver:
    """A loopback HTTP endpoint: verifies each POST's signature with `standardwebhooks`, answers `status`."""

    def __init__(self, secret=None):
        self.secrets = [secret] if secret else []
        self.status = 200
        self.bodies, self.headers, self.bad_signatures = [], [], 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                headers = {k: v for k, v in self.headers.items()}
                with receiver.lock:
                    status = receiver.status
                    verified = False
                    for secret in receiver.secrets:
                        try:
                            Verifier(secret).verify(body, headers)
                            verified = True
                        except WebhookVerificationError:
                            pass
                    if not verified:
                        receiver.bad_signatures += 1
                    receiver.headers.append(headers)
                    receiver.bodies.append(json.loads(body))
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "http://10.0.0.1/steal")
                self.end_headers()
                self.wfile.write(b"ok" if status < 300 else b"nope " * 2000)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.server_port}/hook"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def events(self):
        return [event for body in self.bodies for event in body["events"]]
