"""Senders: how a message leaves. `smtp` is the only one (an asyncio client with a connection pool)."""
