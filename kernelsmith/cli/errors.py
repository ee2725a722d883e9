"""The one way the CLI reports an error: `fail(message, code)`.

Every message goes through `mask_secrets` (a URL's password becomes ***) and is printed
with soft wrapping, so a long path or command stays on one line for the terminal to wrap
(and for a script or test to grep), never broken at 80 columns by rich.
"""

from __future__ import annotations

import logging
import re
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

err = Console(stderr=True)

# scheme://user:password@host -> scheme://user:***@host (any scheme: postgresql, mysql, redis, http ...)
# The password runs to the last "@" before the host, so one holding "@" or "/" is masked whole.
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s:/@]*:)(?P<pw>[^\s'\"]*)(?P<at>@)(?=[^\s@'\"]*)")
# key=value / key: value forms of a password in a connection string (libpq's "password=...")
_KV_PASSWORD = re.compile(r"(?P<head>\b(?:password|passwd|pwd)\s*[=:]\s*)(?P<pw>[^\s'\";&]+)", re.IGNORECASE)


def mask_secrets(text: object) -> str:
    """`text` with every URL password and `password=...` value replaced by ***."""
    s = str(text)
    s = _URL_PASSWORD.sub(lambda m: m["head"] + "***" + m["at"], s)
    return _KV_PASSWORD.sub(lambda m: m["head"] + "***", s)


def fail(message: object, code: int = 2) -> NoReturn:
    """Print `error: MESSAGE` on stderr (masked, soft-wrapped, no markup) and exit with `code`."""
    err.print("[bold red]error:[/] " + escape(mask_secrets(message)), soft_wrap=True)
    raise typer.Exit(code)


def note(message: object, prefix: str = "", style: str = "") -> None:
    """A line on stderr that is not an error (interrupted, skipped ...): masked, soft-wrapped;
    `prefix` (e.g. "skipped") is shown in `style`."""
    text = escape(mask_secrets(message))
    if prefix:
        text = (f"[{style}]{escape(prefix)}[/] " if style else f"{escape(prefix)} ") + text
    elif style:
        text = f"[{style}]{text}[/]"
    err.print(text, soft_wrap=True)


class MaskingFilter(logging.Filter):
    """Masks secrets in every log record (installed on the root handlers by main())."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string is logging's problem, not ours
            return True
        masked = mask_secrets(msg)
        if masked != msg:
            record.msg, record.args = masked, None
        return True


def install_log_masking() -> None:
    for h in logging.getLogger().handlers:
        if not any(isinstance(f, MaskingFilter) for f in h.filters):
            h.addFilter(MaskingFilter())
