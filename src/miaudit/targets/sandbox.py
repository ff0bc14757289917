"""Confine the current process with Linux's Landlock: read anywhere, write only beneath one folder.

Landlock (Linux >= 5.13, ``Documentation/userspace-api/landlock.rst``) lets an unprivileged
process drop rights for itself and every process it later starts, irrevocably. miaudit uses it
in the child process that runs a model file's own code (TorchScript,
:mod:`miaudit.targets.torchscript_child`), after importing torch and before reading the model:

- every right that changes the file system (write, truncate, create, remove, link/rename,
  device ioctls) is handled, and allowed only beneath the child's scratch folder; reading and
  executing stay allowed everywhere (the handled set does not include them);
- from ABI 4, TCP bind and connect are handled with no rule allowing them (no network);
- from ABI 6, abstract UNIX sockets and signals are scoped to the sandbox (the child cannot
  reach the user's D-Bus or signal the user's processes);
- ``PR_SET_NO_NEW_PRIVS`` first (Landlock requires it; no setuid program regains rights);
- resource limits: address space, file size, no core dumps.

Syscall numbers and struct layouts follow the kernel's uapi header
``include/uapi/linux/landlock.h`` (structs ``landlock_ruleset_attr``,
``landlock_path_beneath_attr`` (packed), the ``LANDLOCK_ACCESS_FS_*``, ``LANDLOCK_ACCESS_NET_*``
and ``LANDLOCK_SCOPE_*`` bits). The syscalls ``landlock_create_ruleset`` (444),
``landlock_add_rule`` (445) and ``landlock_restrict_self`` (446) have the same numbers on every
architecture of the unified syscall table (x86_64, aarch64, riscv64, ...).
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import resource
from pathlib import Path

# syscall numbers (asm-generic/unistd.h; identical on x86_64, aarch64, riscv64, ...)
_SYS_LANDLOCK_CREATE_RULESET = 444
_SYS_LANDLOCK_ADD_RULE = 445
_SYS_LANDLOCK_RESTRICT_SELF = 446
_ARCHITECTURES = ("x86_64", "aarch64", "riscv64", "ppc64le", "s390x")

_LANDLOCK_CREATE_RULESET_VERSION = 1 << 0
_LANDLOCK_RULE_PATH_BENEATH = 1

# include/uapi/linux/landlock.h: LANDLOCK_ACCESS_FS_* (the ABI that introduced each bit)
_FS_WRITE_FILE = 1 << 1
_FS_REMOVE_DIR = 1 << 4
_FS_REMOVE_FILE = 1 << 5
_FS_MAKE_CHAR = 1 << 6
_FS_MAKE_DIR = 1 << 7
_FS_MAKE_REG = 1 << 8
_FS_MAKE_SOCK = 1 << 9
_FS_MAKE_FIFO = 1 << 10
_FS_MAKE_BLOCK = 1 << 11
_FS_MAKE_SYM = 1 << 12
_FS_REFER = 1 << 13  # ABI 2
_FS_TRUNCATE = 1 << 14  # ABI 3
_FS_IOCTL_DEV = 1 << 15  # ABI 5
_NET_BIND_TCP = 1 << 0  # ABI 4
_NET_CONNECT_TCP = 1 << 1  # ABI 4
_SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0  # ABI 6
_SCOPE_SIGNAL = 1 << 1  # ABI 6

_PR_SET_PDEATHSIG = 1
_PR_SET_NO_NEW_PRIVS = 38

MEMORY_LIMIT = 8 << 30
"""Address space the confined process may map (bytes; RLIMIT_AS)."""

FILE_SIZE_LIMIT = 256 << 20
"""Largest file the confined process may write (bytes; RLIMIT_FSIZE), its scratch folder included."""


class _RulesetAttr(ctypes.Structure):
    """``struct landlock_ruleset_attr`` (ABI 1: first field; ABI 4: +net; ABI 6: +scoped)."""

    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    """``struct landlock_path_beneath_attr``, ``__attribute__((packed))``: 12 bytes."""

    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    libc.prctl.restype = ctypes.c_int
    return libc


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def landlock_abi() -> tuple[int, str]:
    """Landlock's ABI version on this machine (0 if unavailable) and, if 0, why."""
    if platform.system() != "Linux":
        return 0, f"Landlock is a Linux feature (this is {platform.system()})"
    if platform.machine() not in _ARCHITECTURES:
        return 0, f"miaudit does not know Landlock's syscall numbers on {platform.machine()}"
    libc = _libc()
    abi = libc.syscall(ctypes.c_long(_SYS_LANDLOCK_CREATE_RULESET), None, ctypes.c_size_t(0), ctypes.c_uint32(_LANDLOCK_CREATE_RULESET_VERSION))
    if abi >= 1:
        return int(abi), ""
    err = ctypes.get_errno()
    if err == errno.ENOSYS:
        return 0, f"kernel {platform.release()} has no Landlock (needs Linux >= 5.13 built with CONFIG_SECURITY_LANDLOCK)"
    if err == errno.EOPNOTSUPP:
        return 0, "Landlock is disabled at boot (add landlock to the kernel's lsm= list)"
    return 0, f"Landlock is unavailable: {os.strerror(err)}"


def _fs_write_rights(abi: int) -> int:
    rights = (
        _FS_WRITE_FILE | _FS_REMOVE_DIR | _FS_REMOVE_FILE | _FS_MAKE_CHAR | _FS_MAKE_DIR | _FS_MAKE_REG
        | _FS_MAKE_SOCK | _FS_MAKE_FIFO | _FS_MAKE_BLOCK | _FS_MAKE_SYM
    )  # fmt: skip
    if abi >= 2:
        rights |= _FS_REFER
    if abi >= 3:
        rights |= _FS_TRUNCATE
    if abi >= 5:
        rights |= _FS_IOCTL_DEV
    return rights


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when the thread that started it exits."""
    import signal

    _check(_libc().prctl(_PR_SET_PDEATHSIG, ctypes.c_ulong(signal.SIGKILL), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0)), "prctl(PR_SET_PDEATHSIG)")


def limit_resources(memory: int = MEMORY_LIMIT, file_size: int = FILE_SIZE_LIMIT) -> None:
    """Cap the address space and the size of any file written; no core dumps."""
    for limit, value in ((resource.RLIMIT_AS, memory), (resource.RLIMIT_FSIZE, file_size), (resource.RLIMIT_CORE, 0)):
        _, hard = resource.getrlimit(limit)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(limit, (value, value))


def confine_writes_to(scratch: str | Path) -> int:
    """Restrict this process (and all it starts) for good: writes only beneath ``scratch``, no
    TCP, abstract sockets and signals scoped to the sandbox where the ABI has them; reads stay
    allowed. Returns the Landlock ABI used; raises OSError if Landlock is missing or refuses."""
    abi, why = landlock_abi()
    if abi < 1:
        raise OSError(errno.ENOSYS, why)
    libc = _libc()
    fs_rights = _fs_write_rights(abi)
    attr = _RulesetAttr(handled_access_fs=fs_rights)
    size = ctypes.sizeof(ctypes.c_uint64)  # ABI 1-3 know only handled_access_fs
    if abi >= 4:
        attr.handled_access_net = _NET_BIND_TCP | _NET_CONNECT_TCP
        size = 2 * ctypes.sizeof(ctypes.c_uint64)
    if abi >= 6:
        attr.scoped = _SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL
        size = ctypes.sizeof(_RulesetAttr)
    ruleset = _check(
        libc.syscall(ctypes.c_long(_SYS_LANDLOCK_CREATE_RULESET), ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0)),
        "landlock_create_ruleset",
    )
    try:
        folder = os.open(str(scratch), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            rule = _PathBeneathAttr(allowed_access=fs_rights, parent_fd=folder)
            _check(
                libc.syscall(ctypes.c_long(_SYS_LANDLOCK_ADD_RULE), ctypes.c_int(ruleset), ctypes.c_int(_LANDLOCK_RULE_PATH_BENEATH),
                             ctypes.byref(rule), ctypes.c_uint32(0)),
                "landlock_add_rule",
            )  # fmt: skip
        finally:
            os.close(folder)
        _check(libc.prctl(_PR_SET_NO_NEW_PRIVS, ctypes.c_ulong(1), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0)), "prctl(PR_SET_NO_NEW_PRIVS)")
        _check(libc.syscall(ctypes.c_long(_SYS_LANDLOCK_RESTRICT_SELF), ctypes.c_int(ruleset), ctypes.c_uint32(0)), "landlock_restrict_self")
    finally:
        os.close(ruleset)
    return abi
