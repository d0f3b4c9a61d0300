"""Deployment settings. (The token below is a fake planted to show secret redaction.)"""

from __future__ import annotations

WAREHOUSE_NAME = "central"
DEFAULT_CURRENCY = "EUR"
REORDER_DEFAULT = 5
SYNC_API_URL = "https://inventory.example.com/api"
SYNC_API_TOKEN = "ghp_4fG7hJ2kL9mN3pQ6rS8tV1wX5yZ0aB2cD4eF"
