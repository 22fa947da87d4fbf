"""Real-time leads: the webhook inbox sensor and the ``webhook_leads`` asset/job it launches per distributor."""
