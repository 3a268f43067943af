"""`manage.py capture_smtpd`: the demo capture SMTP server (the "Test inbox"). Accepts everything on loopback."""

import asyncio
import logging
import signal

from django.conf import settings
from django.core.management.base import BaseCommand

from queues.capture import capture_server_factory

logger = logging.getLogger("queues.capture")


class Command(BaseCommand):
    help = "Run the demo capture SMTP server that stores every message it receives (the Test inbox)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=settings.CAPTURE_SMTP_HOST)
        parser.add_argument("--port", type=int, default=settings.CAPTURE_SMTP_PORT)

    def handle(self, *args, host, port, **options):
        if settings.DEMO_MODE:
            # The demo needs something to send from: node "local", IP 127.0.0.1, shared pool "default".
            from ippools.services import ensure_local_node

            node, ip, pool = ensure_local_node()
            self.stdout.write(f"Demo sending setup: node {node.name}, IP {ip.address}, pool {pool.name}")
        asyncio.run(self._serve(host, port))

    async def _serve(self, host, port):
        loop = asyncio.get_running_loop()
        server = await loop.create_server(capture_server_factory(), host=host, port=port)
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        self.stdout.write(f"Capture SMTP server listening on {host}:{port}")
        await stop.wait()
        server.close()
        await server.wait_closed()
        self.stdout.write("Capture SMTP server stopped.")
