"""`manage.py smtpd`: the SMTP submission listener (STARTTLS, AUTH PLAIN/LOGIN) and inbound report receiver."""

import asyncio
import signal

from django.conf import settings
from django.core.management.base import BaseCommand

from queues.smtpd.listener import make_server_factory, tls_context


class Command(BaseCommand):
    help = "Run the SMTP submission listener (STARTTLS required, AUTH with SMTP credentials)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=settings.SMTPD_HOST)
        parser.add_argument("--port", type=int, default=settings.SMTPD_PORT)

    def handle(self, *args, host, port, **options):
        asyncio.run(self._serve(host, port))

    async def _serve(self, host, port):
        loop = asyncio.get_running_loop()
        server = await loop.create_server(make_server_factory(tls_context()), host=host, port=port)
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        self.stdout.write(f"SMTP submission listener on {host}:{port} (STARTTLS, then AUTH)")
        await stop.wait()
        server.close()
        await server.wait_closed()
