"""Notifier metrics (no per-customer labels)."""

from prometheus_client import Counter

EMAILS_SENT = Counter("dozen_emails_sent", "Emails the SMTP server accepted.")
