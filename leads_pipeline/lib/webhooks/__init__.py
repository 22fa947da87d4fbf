"""webhooks"""

#: Where the receiver listens (``leads_pipeline.web.webhooks``); here so that the CLI names it without importing
#: the web stack.
WEBHOOK_PATH = "/webhooks/meta"
