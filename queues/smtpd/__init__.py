"""The SMTP listener: authenticated submission (STARTTLS + AUTH) and inbound bounce/complaint reports."""
