"""Annotation files as every reader sees them: UTF-8 text, captions checked, JSON parsed.

A file is decoded once (:func:`read_text`); bytes that are not UTF-8 survive as lone
surrogates, so each caption that holds them is rejected on its own (:func:`caption_ok`) and
the rest of the file is still read. :func:`finish_text` rejects bad bytes that lie outside
every caption. JSON errors and missing keys raise
:class:`~mcsan.data.validate.DataValidationError` naming the file and the fix.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcsan.data.validate import DataValidationError, ValidationReport


@dataclass
class TextFile:
    """A text file decoded as UTF-8; bytes that are not UTF-8 survive as lone surrogates."""

    label: Path
    raw: bytes
    text: str
    first_bad: int | None  # byte offset of the first byte that is not UTF-8
    rejected: int = 0  # captions rejected for such bytes


_UNDECODABLE = re.compile("[\udc80-\udcff]")


def read_text(label: Path, raw: bytes | None = None) -> TextFile:
    raw = label.read_bytes() if raw is None else raw
    start = 3 if raw.startswith(b"\xef\xbb\xbf") else 0  # a UTF-8 byte-order mark
    try:
        return TextFile(label, raw, raw[start:].decode("utf-8"), None)
    except UnicodeDecodeError as error:
        text = raw[start:].decode("utf-8", "surrogateescape")
        return TextFile(label, raw, text, start + error.start)


def caption_ok(
    source: TextFile, caption_id: str, text: object, report: ValidationReport, own_id: Any = None
) -> bool:
    """Whether a caption read from ``source`` is a string of valid UTF-8 (else reject it);
    ``own_id``, the data set's own id of the caption (MSR-VTT's ``sen_id``), is named too."""
    item = f"caption {caption_id}" + (f" (sen_id {own_id})" if own_id is not None else "")
    if not isinstance(text, str):
        reason = f"is {type(text).__name__}, not text"
        report.reject(source.label, item, reason, "write the caption as a string")
        return False
    if source.first_bad is not None and _UNDECODABLE.search(text):
        source.rejected += 1
        raw_text = text.encode("utf-8", "surrogateescape")
        start = source.raw.find(raw_text)
        bad_index = _UNDECODABLE.search(text).start()
        offset = (
            start + len(text[:bad_index].encode("utf-8", "surrogateescape"))
            if start >= 0
            else source.first_bad
        )
        reason = f"holds bytes that are not UTF-8 ({_position(source.raw, offset)})"
        report.reject(source.label, item, reason, "re-save the file as UTF-8")
        return False
    return True


def finish_text(source: TextFile, report: ValidationReport) -> None:
    """Reject non-UTF-8 bytes that lie outside every caption (ids, other fields)."""
    if source.first_bad is not None and source.rejected == 0:
        reason = "is not UTF-8 and lies outside any caption text"
        item = f"the byte at {_position(source.raw, source.first_bad)}"
        report.reject(source.label, item, reason, "re-save the file as UTF-8")


def _position(raw: bytes, offset: int) -> str:
    line = raw.count(b"\n", 0, offset) + 1
    return f"byte offset {offset}, line {line}"


def parse_json(source: TextFile) -> Any:
    try:
        return json.loads(source.text)
    except json.JSONDecodeError as error:
        raise DataValidationError(
            f"{source.label}: not valid JSON at line {error.lineno} column {error.colno} "
            f"({error.msg}). Fix: repair or re-download the file"
        ) from error


def required(record: Any, keys: tuple[str, ...], label: Path, where: str = "top level") -> list:
    """The values of ``keys`` in a JSON object, with an error naming what is missing."""
    present = record if isinstance(record, dict) else {}
    missing = [key for key in keys if key not in present]
    if missing:
        raise DataValidationError(
            f"{label}: {where} lacks {missing}; expected an object with {list(keys)}. "
            f"Fix: use the official annotation file"
        )
    return [present[key] for key in keys]
