"""The one error of the reward service's requests, below both the request parsing
(request_items) and the task lookup (task_index) that raise it."""

from __future__ import annotations


class RequestError(ValueError):
    """A request the service cannot serve, with a message for the client (HTTP 400)."""
