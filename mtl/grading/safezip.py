"""Read an untrusted zip archive in memory without trusting its entry names or its declared sizes.

Every entry is vetted when the archive is opened (names that could escape an extraction folder,
symbolic links, encryption, duplicates, declared total size); entries are only ever read into memory,
never extracted, and a read never decompresses more than the entry's declared (and limited) size, so
an archive that lies about its sizes (a zip bomb) costs at most the limit and fails its CRC check.
Whatever zipfile or a decompressor raises on opening the archive or reading an entry becomes a
SubmissionError: one line naming the archive (and the entry), never a traceback.
"""

from __future__ import annotations

import re
import stat
import zipfile
from pathlib import Path
from typing import BinaryIO

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

_DRIVE = re.compile(r"^[A-Za-z]:")


class SubmissionError(ValueError):
    """An untrusted archive that is rejected; the one-line message names the archive and the entry."""


def _unsafe_name_reason(raw_name: str) -> str | None:
    """Why an entry name could escape an extraction folder (None when it is safe)."""
    if "\x00" in raw_name:
        return "NUL byte in its name"
    if "\\" in raw_name:
        return "backslash in its name"
    if raw_name.startswith("/") or _DRIVE.match(raw_name):
        return "absolute path"
    if ".." in raw_name.split("/"):
        return "'..' in its path"
    return None


def _shown(name: str, limit: int = 120) -> str:
    """An entry name fit for a one-line message: quoted and escaped (repr), and cut when it is very long."""
    text = repr(name)
    return text if len(text) <= limit else f"{text[: limit - 1]}…' ({len(name)} characters)"


def _reason(exc: BaseException, limit: int = 300) -> str:
    """An exception as a one-line reason: whitespace (newlines included) collapsed, cut when very long."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


class SafeZip:
    """A vetted, read-only view of a zip archive; use as a context manager.

    ``max_total_bytes`` bounds the declared uncompressed size of all entries; ``max_entry_bytes`` bounds
    the declared size of one entry that is read. Entries never read (checkpoints, nested archives)
    only count towards the total. Reads never go past the declared size (:func:`read_limited`).
    """

    def __init__(self, path: str | Path, max_total_bytes: int = 2 * GiB, max_entry_bytes: int = 64 * MiB) -> None:
        self.path = Path(path)
        self.max_total_bytes = max_total_bytes
        self.max_entry_bytes = max_entry_bytes
        if not self.path.is_file():
            raise SubmissionError(f"{self.path}: no such file")
        try:
            self._zip = zipfile.ZipFile(self.path)
        except MemoryError:
            raise  # no verdict on the archive: opening reads its central directory, never more than the file
        except Exception as exc:
            # By design, not by listing: on hostile input zipfile raises BadZipFile, NotImplementedError (an
            # out-of-range "version needed"), UnicodeDecodeError (names), struct.error, ValueError, OSError,
            # EOFError, …, and which one depends on the Python version. Whatever it is, the archive is unreadable.
            raise SubmissionError(f"{self.path}: not a readable zip archive ({_reason(exc)})") from exc
        try:
            self._infos = self._vet(self._zip.infolist())
        except SubmissionError:
            self._zip.close()
            raise

    def _vet(self, infos: list[zipfile.ZipInfo]) -> dict[str, zipfile.ZipInfo]:
        by_name: dict[str, zipfile.ZipInfo] = {}
        total = 0
        for info in infos:
            name = info.orig_filename
            if not name:
                raise SubmissionError(f"{self.path}: an entry has an empty name")
            reason = _unsafe_name_reason(name)
            if reason:
                raise SubmissionError(f"{self.path}: entry {_shown(name)} escapes the archive ({reason})")
            if stat.S_ISLNK(info.external_attr >> 16):
                raise SubmissionError(f"{self.path}: entry {_shown(name)} is a symbolic link; links are not allowed")
            if info.flag_bits & 0x1:
                raise SubmissionError(f"{self.path}: entry {_shown(name)} is encrypted")
            if name in by_name:
                raise SubmissionError(f"{self.path}: entry {_shown(name)} appears more than once")
            by_name[name] = info
            total += info.file_size
        if total > self.max_total_bytes:
            raise SubmissionError(
                f"{self.path}: entries declare {total} bytes uncompressed, over the limit of {self.max_total_bytes}"
            )
        return by_name

    def __enter__(self) -> SafeZip:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._zip.close()

    def file_names(self) -> list[str]:
        """Names of the file entries (folders left out), in archive order."""
        return [name for name, info in self._infos.items() if not info.is_dir()]

    def read(self, name: str) -> bytes:
        """The entry's bytes. Declared sizes are within the limits (checked here and at opening), and no
        more than the declared size is ever decompressed, so the actual bytes are within them too."""
        info = self._infos[name]
        if info.file_size > self.max_entry_bytes:
            raise SubmissionError(
                f"{self.path}: entry {_shown(name)} declares {info.file_size} bytes, over the per-entry limit of "
                f"{self.max_entry_bytes}"
            )
        try:
            with self._zip.open(info) as stream:
                return read_limited(stream, info.file_size, f"{self.path}: entry {_shown(name)}")
        except (SubmissionError, MemoryError):
            # A MemoryError is no verdict on the entry: the declared size is limited and reads stop there.
            raise
        except Exception as exc:
            # By design, not by listing: each decompressor has its own errors (zlib.error, _lzma.LZMAError,
            # OSError from bz2, struct.error from a short LZMA header, NotImplementedError for an unknown
            # method, BadZipFile for a bad header or CRC, EOFError, …). Whatever it is, the entry is unreadable.
            # A bomb that under-declares its size ends here too: zipfile stops at the declared size and the
            # CRC of the truncated data does not match.
            raise SubmissionError(
                f"{self.path}: entry {_shown(name)} is corrupt or unreadable ({_reason(exc)})"
            ) from exc


def read_limited(stream: BinaryIO, limit: int, what: str) -> bytes:
    """Read a stream that must hold at most ``limit`` bytes, never buffering more than ``limit + 1``.

    zipfile itself stops at an entry's declared size; this does not rely on it."""
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise SubmissionError(f"{what} decompresses to more than its declared {limit} bytes")
    return data
