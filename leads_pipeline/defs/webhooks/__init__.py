"""Real-time leads: the external ``webhook_inbox`` asset and the inbox sensor → webhook job → the one sync path."""
