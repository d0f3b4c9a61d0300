"""Which documents refactors may read: open in the editor, inside the workspace, not too large.

A refactor shows a document's names in action titles and sends its text to the model, so it must
only ever see what the user is editing in this workspace: never a URI the client merely names
(``file:///etc/passwd``, a FIFO, ``/dev/zero``), never a path that leaves the workspace through
``..`` or a symlink. Documents are taken from the editor's copies only (nothing is read from
disk), and one larger than :data:`MAX_REFACTOR_CHARS` is refused with the reason: parsing and
validating it would hold the GIL long enough to stall every other request.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from urllib.parse import urlsplit

from pygls.uris import to_fs_path

__all__ = ["MAX_REFACTOR_CHARS", "size_refusal", "workspace_refusal"]

MAX_REFACTOR_CHARS = 200_000
"""Largest document refactors work on. A refactor parses the file a few times (``ast.parse``
≈ 1–2 ms per KB, holding the GIL): 200 k characters keep each stall of the event loop around
0.3 s on a slow CPU; a 5 MB file would freeze it for 10 s and take a GB for its tree."""

_EDITOR_ONLY_SCHEMES = {"untitled"}
"""Documents that exist only in the editor (never on disk): the user's own text, allowed."""


def workspace_refusal(uri: str, roots: Iterable[str]) -> str | None:
    """Why refactors may not touch the open document ``uri`` (None when they may).

    ``roots`` are the workspace folders' paths. The document's path is resolved (``..`` and
    symlinks) before the check, so ``ws/../outside/x.py`` and a link out of the workspace are
    refused. The reason never names the file.
    """
    scheme = urlsplit(uri).scheme.lower()
    if scheme in _EDITOR_ONLY_SCHEMES:
        return None
    if scheme != "file":
        return f"refactors work on files of the workspace, not on {scheme or 'scheme-less'} URIs"
    path = to_fs_path(uri)
    folders = [os.path.realpath(root) for root in roots if root]
    if not folders:
        return "refactors work on files of a workspace folder: open one"
    if path is None or "\x00" in path:
        return "the URI is not a valid file path"
    real = os.path.realpath(path)
    for folder in folders:
        if real == folder or real.startswith(folder.rstrip(os.sep) + os.sep):
            return None
    return "the file is outside the workspace folders"


def size_refusal(source: str) -> str | None:
    """The reason a document this large gets no refactors (None when it is small enough)."""
    if len(source) <= MAX_REFACTOR_CHARS:
        return None
    return (
        f"the document has {len(source):,} characters; refactors work on documents of up to "
        f"{MAX_REFACTOR_CHARS:,} (select a smaller file or split this one)"
    )
