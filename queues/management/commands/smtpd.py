"""`manage.py smtpd`: the SMTP submission listener (STARTTLS, AUTH PLAIN/LOGIN) and the inbound port for bounces and
feedback-loop reports (the MX of the return-path hosts: STARTTLS offered, not required; no AUTH)."""

import asyncio
import signal

from django.conf import settings
from django.core.management.base import BaseCommand

from queues.smtpd.listener import make_server_factory, tls_context


class Command(BaseCommand):
    help = "Run the SMTP submission listener (STARTTLS required, AUTH with SMTP credentials) and the inbound port."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=settings.SMTPD_HOST)
        parser.add_argument("--port", type=int, default=settings.SMTPD_PORT)
        parser.add_argument("--inbound-host", default=settings.SMTPD_INBOUND_HOST)
        parser.add_argument("--inbound-port", type=int, default=settings.SMTPD_INBOUND_PORT, help="0: no inbound port")

    def handle(self, *args, host, port, inbound_host, inbound_port, **options):
        asyncio.run(self._serve(host, port, inbound_host, inbound_port))

    async def _serve(self, host, port, inbound_host, inbound_port):
        loop = asyncio.get_running_loop()
        context = tls_context()
        servers = [await loop.create_server(make_server_factory(context), host=host, port=port)]
        self.stdout.write(f"SMTP submission listener on {host}:{port} (STARTTLS, then AUTH)")
        if inbound_port:
            factory = make_server_factory(context, inbound=True)
            servers.append(await loop.create_server(factory, host=inbound_host, port=inbound_port))
            self.stdout.write(f"SMTP inbound port on {inbound_host}:{inbound_port} (bounces and complaints)")
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        for server in servers:
            server.close()
            await server.wait_closed()
