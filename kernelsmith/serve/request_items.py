"""Turning the items of a score request into `Item`s: which task, and which code.

A completion without usable code is not an error here: it becomes an Item with no code and
a format_error, and is later scored as a format failure. Only a request the service cannot
read at all raises RequestError (HTTP 400).
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from kernelsmith.llm.extract import completion_text, extract_code
from kernelsmith.results import code_hash  # noqa: F401 - re-exported for serve's callers
from kernelsmith.serve.errors import RequestError
from kernelsmith.serve.task_index import TaskIndex
from kernelsmith.task import Task


@dataclass
class Item:
    """One scored item of a request: the raw completion, and where its result comes from."""

    completion: str
    task: Task
    code: str | None
    format_error: str = ""
    future: Future | None = None
    cached: bool = False


def parse_items(tasks: TaskIndex, raw_items: Any, max_items: int) -> list[Item]:
    """The request's "items" as Items: an item gives "code" verbatim, or a "completion" (a
    string or chat messages) whose code is extracted."""
    if not isinstance(raw_items, list) or not raw_items:
        raise RequestError("\"items\" must be a non-empty list of {\"task\": ..., \"completion\": ...}")
    if len(raw_items) > max_items:
        raise RequestError(f"{len(raw_items)} items in one request; the limit is {max_items} "
                           "(split the batch, or start the server with a larger --max-items)")
    items = []
    for i, raw in enumerate(raw_items):
        if not isinstance(raw, dict):
            raise RequestError(f"item {i} is not an object")
        task = tasks.resolve(raw.get("task"))
        if "code" in raw and raw["code"] is not None:
            if not isinstance(raw["code"], str):
                raise RequestError(f"item {i}: \"code\" must be a string")
            code, err = (raw["code"], "") if raw["code"].strip() else (None, "the code was empty")
            items.append(Item(raw["code"], task, code, err))
            continue
        text = raw.get("completion")
        if isinstance(text, list):  # chat messages: the assistant's last message
            text = completion_text(text)
        if text is not None and not isinstance(text, str):
            raise RequestError(f"item {i}: \"completion\" must be a string or a list of chat messages")
        code, err = extract_code(text)
        items.append(Item(text or "", task, code, err))
    return items
