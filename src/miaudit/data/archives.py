"""Reading single members of tar archives without extracting anything to disk."""

from __future__ import annotations

import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path

from miaudit.errors import DataError

# Larger than any member of the supported archives (Texas100's features are ~0.9 GB of text);
# a bigger claimed size means a hostile or corrupt archive, not data.
MAX_MEMBER_BYTES = 4 << 30

_READ_ERRORS = (tarfile.TarError, OSError, EOFError, zlib.error)


def _corrupt(archive: Path, exc: BaseException) -> DataError:
    return DataError(
        f"{archive} is not a readable tar archive (corrupt or truncated: {exc}); delete it and fetch it again"
    )


def read_member(archive: Path, member: str) -> bytes:
    """Bytes of the regular-file member named exactly ``member`` (no links, no other names).

    Nothing is extracted, so hostile member names (``../x``, absolute paths) can do no harm:
    they simply are not the name asked for.
    """
    try:
        with tarfile.open(archive, "r:*") as tar:
            try:
                info = tar.getmember(member)
            except KeyError:
                raise DataError(
                    f"{archive} has no member {member!r}; it is not the expected archive: delete it and fetch it again"
                ) from None
            if not info.isreg():
                raise DataError(
                    f"{archive}: member {member!r} is not a regular file; the archive is not the published one"
                )
            if info.size > MAX_MEMBER_BYTES:
                raise DataError(f"{archive}: member {member!r} claims {info.size} bytes, more than any real data file")
            f = tar.extractfile(info)
            assert f is not None  # a regular file always has content
            data = f.read()
    except _READ_ERRORS as exc:
        raise _corrupt(archive, exc) from None
    if len(data) != info.size:
        raise _corrupt(archive, EOFError(f"member {member!r} is truncated"))
    return data


def iter_regular_members(archive: Path) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of every regular-file member, streamed in archive order.

    Links, devices and directories are skipped; callers match names against what they expect.
    """
    try:
        with tarfile.open(archive, "r|*") as tar:
            for info in tar:
                if not info.isreg():
                    continue
                if info.size > MAX_MEMBER_BYTES:
                    raise DataError(f"{archive}: member {info.name!r} claims {info.size} bytes; the archive is corrupt")
                f = tar.extractfile(info)
                assert f is not None
                data = f.read()
                if len(data) != info.size:
                    raise EOFError(f"member {info.name!r} is truncated")
                yield info.name, data
    except _READ_ERRORS as exc:
        raise _corrupt(archive, exc) from None
