"""Deployment examples past one machine (Kubernetes, Celery); see docs/deployment.md. Nothing here is autoloaded."""
