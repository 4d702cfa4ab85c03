"""The physical lines of a usage file, for csv.reader: each decoded on its own, numbered
as an editor counts them, and held to LINE_MAX_LENGTH, so that a byte that is not UTF-8,
a NUL or a line too long is a bad line of its own and the reading goes on.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator
from typing import IO, Any

# A binary file is read this many bytes at a time.
CHUNK_SIZE = 1 << 16
# The longest line (bytes of a binary file, characters of a text one), or record when a
# quoted field runs over several lines. No usage line comes near it; holding longer ones
# would let a file without line breaks, or with a quote left open, fill the memory.
LINE_MAX_LENGTH = 1 << 20


class Unreadable(Exception):
    """The csv reader cannot finish a record: it is a bad line, and reading goes on."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


_OVERLONG = object()  # a line too long to keep: its text is dropped
_UNDECODABLE = object()  # a text file object could not decode what came next


class Lines:
    """The physical lines of a usage file, for csv.reader, numbered as it counts them.

    A TextIOWrapper decodes a chunk ahead of the line being read, and its error does not
    say which line: here each line is decoded on its own. A line that is not UTF-8 does
    not stop the reading: it goes on to the reader decoded with replacement characters
    (so the record keeps its shape) and into `troubles`, and its record is reported, not
    read. Iterating again after an Unreadable error goes on at the next line.
    """

    def __init__(self, file_obj: IO[Any]) -> None:
        self.number = 0
        self.troubles: dict[int, str] = {}  # line -> reason, in the current record
        self._record_start = 1
        self._record_length = 0
        # The lines, or the _OVERLONG and _UNDECODABLE markers in their place.
        self._pieces: Iterator[Any]
        if isinstance(file_obj.read(0), bytes):
            self._pieces, self._unit = _byte_lines(file_obj), "bytes"
        else:
            self._pieces, self._unit = _text_lines(file_obj), "characters"

    def next_record(self) -> dict[int, str]:
        """Start a record; return the troubles of the one just read (not to be changed)."""
        troubles = self.troubles
        if troubles:
            self.troubles = {}
        self._record_start = self.number + 1
        self._record_length = 0
        return troubles

    def __iter__(self) -> Iterator[str]:
        for piece in self._pieces:
            self.number += 1
            if piece is _OVERLONG:
                raise Unreadable(f"line longer than {LINE_MAX_LENGTH} {self._unit}")
            if piece is _UNDECODABLE:
                raise Unreadable("is not UTF-8 text")
            self._record_length += len(piece)
            if self._record_length > LINE_MAX_LENGTH:
                # Only a quoted field over several lines gets here.
                raise Unreadable(
                    f"the record from line {self._record_start} is longer than "
                    f"{LINE_MAX_LENGTH} {self._unit} (a quote left open?)"
                )
            if isinstance(piece, bytes):
                if self.number == 1 and piece.startswith(codecs.BOM_UTF8):
                    piece = piece[len(codecs.BOM_UTF8) :]
                try:
                    text = piece.decode()
                except UnicodeDecodeError as error:
                    self.troubles[self.number] = (
                        f"unreadable: is not UTF-8 text (byte 0x{piece[error.start]:02X} "
                        f"at column {error.start + 1})"
                    )
                    text = piece.decode(errors="replace")
            else:
                text = piece
            if "\x00" in text:
                # PostgreSQL text cannot hold it.
                self.troubles.setdefault(self.number, "unreadable: contains a NUL character")
                text = text.replace("\x00", "\ufffd")
            yield text


def _byte_lines(stream: IO[bytes]) -> Iterator[bytes | object]:
    """The lines of a binary stream, endings kept, split at \n, \r\n or \r as csv wants
    (what a TextIOWrapper with newline="" does); _OVERLONG for a line too long."""
    pending = b""
    skipping = False  # in a line too long: drop it up to its end
    drop_lf = False  # a line too long ended in "\r": drop the "\n" of a "\r\n"
    while chunk := stream.read(CHUNK_SIZE):
        if drop_lf:
            drop_lf, chunk = False, chunk.removeprefix(b"\n")
            if not chunk:
                continue
        lines = (pending + chunk).splitlines(keepends=True)
        # The last line may go on in the next chunk ("\r" may be half of "\r\n").
        pending = b"" if lines[-1].endswith(b"\n") else lines.pop()
        for line in lines:
            if skipping:
                skipping = False  # the end of the line too long
            elif len(line) > LINE_MAX_LENGTH:
                yield _OVERLONG
            else:
                yield line
        if len(pending) > LINE_MAX_LENGTH:
            if not skipping:
                yield _OVERLONG
            # Dropped; a "\r" at its end is the end of the line.
            drop_lf = pending.endswith(b"\r")
            skipping, pending = not drop_lf, b""
    if pending and not skipping:
        yield pending


def _text_lines(stream: IO[str]) -> Iterator[str | object]:
    """The lines of a text stream; _OVERLONG for a line too long."""
    try:
        while line := stream.readline(LINE_MAX_LENGTH + 1):
            if len(line) <= LINE_MAX_LENGTH:
                yield line
                continue
            yield _OVERLONG
            while line and not line.endswith(("\n", "\r")):
                line = stream.readline(LINE_MAX_LENGTH + 1)
    except UnicodeDecodeError:
        yield _UNDECODABLE


def _unreadable(error: Exception) -> str:
    if isinstance(error, Unreadable):
        return f"unreadable: {error.reason}"
    if "field larger than field limit" in str(error):
        return f"unreadable: a field is longer than {csv.field_size_limit()} characters"
    return f"unreadable: {error}"


def unreadable_troubles(lines: Lines, error: Exception) -> dict[int, str]:
    """The troubles of a record the reader gave up on, with the reason it gave up."""
    troubles = dict(lines.next_record())
    line = lines.number
    troubles[line] = "; ".join(filter(None, (troubles.get(line), _unreadable(error))))
    return troubles
