"""The resource guard: memory, disk and load of the machine a run lives on (psutil).

Each iteration the loop reads the host's memory in use, the disk in use under the run
directory and the 1-minute load per core, and compares them with the thresholds of config
``resources`` (defaults: memory warn 70 % / critical 80 %, disk warn 65 % / critical 70 %,
load 1.5 x the cores). A level that changes (ok -> warn -> critical, and back) is reported
once: a console line and a ``RESOURCE`` ledger event. Critical disk stops the run after the
current iteration with a final complete checkpoint (Orbax and the replay files write to a
temporary name and rename, so a stop never leaves a partial one); critical memory is reported
(the multi-configuration scheduler will shrink chunks on it, ``rlloop.scheduler``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

__all__ = ["LEVELS", "Reading", "ResourceGuard", "ResourceStatus", "measure"]

LEVELS = ("ok", "warn", "critical")


@dataclasses.dataclass(frozen=True)
class Reading:
    """Shares in use (0..1) of host memory and of the run directory's disk, and the 1-minute
    load average per core (1.0 = every core busy)."""

    memory: float
    disk: float
    load: float


def measure(path: str | Path) -> Reading:
    """The host's reading now (psutil; the load from ``os.getloadavg``)."""
    import psutil

    memory = psutil.virtual_memory().percent / 100.0
    disk = psutil.disk_usage(str(path)).percent / 100.0
    try:
        load = os.getloadavg()[0] / max(psutil.cpu_count() or 1, 1)
    except OSError:  # no load average on this platform
        load = 0.0
    return Reading(memory=memory, disk=disk, load=load)


@dataclasses.dataclass(frozen=True)
class ResourceStatus:
    """A reading and its level per resource (``ok``, ``warn`` or ``critical``)."""

    reading: Reading
    levels: dict[str, str]

    def at(self, level: str) -> list[str]:
        """The resources at ``level``."""
        return [name for name, value in self.levels.items() if value == level]

    def describe(self, name: str) -> str:
        """``disk 72% used (critical at 70%)``-style text for one resource."""
        value = getattr(self.reading, name)
        unit = "x the cores" if name == "load" else "used"
        shown = f"{value:.2f}" if name == "load" else f"{value:.0%}"
        return f"{name} {shown} {unit} ({self.levels[name]})"


class ResourceGuard:
    """Compares readings with thresholds and reports level changes (module doc).

    Args:
      path: a path on the disk to watch (the run directory).
      memory_warn, memory_critical, disk_warn, disk_critical: shares in (0, 1].
      load_warn: load per core that warns (load has no critical level: a busy machine slows a
        run but endangers nothing).
      read: ``(path) -> Reading``; :func:`measure` by default (tests pass their own).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        memory_warn: float = 0.70,
        memory_critical: float = 0.80,
        disk_warn: float = 0.65,
        disk_critical: float = 0.70,
        load_warn: float = 1.5,
        read: Callable[[str | Path], Reading] | None = None,
    ) -> None:
        for name, warn, critical in (("memory", memory_warn, memory_critical),
                                     ("disk", disk_warn, disk_critical)):  # fmt: skip
            if not 0 < warn < critical <= 1:
                raise ValueError(
                    f"resources.{name}_warn={warn} and resources.{name}_critical={critical}: "
                    f"need 0 < warn < critical <= 1"
                )
        if load_warn <= 0:
            raise ValueError(f"resources.load_warn={load_warn} must be > 0")
        self.path = Path(path)
        self.thresholds = {
            "memory": (memory_warn, memory_critical),
            "disk": (disk_warn, disk_critical),
            "load": (load_warn, float("inf")),
        }
        self._read = read or measure
        self._last: dict[str, str] = dict.fromkeys(self.thresholds, "ok")

    def check(self) -> ResourceStatus:
        """Read the machine and give each resource its level."""
        reading = self._read(self.path)
        levels = {}
        for name, (warn, critical) in self.thresholds.items():
            value = getattr(reading, name)
            levels[name] = "critical" if value >= critical else "warn" if value >= warn else "ok"
        return ResourceStatus(reading, levels)

    def changes(self, status: ResourceStatus) -> list[str]:
        """The resources whose level differs from the last status given here."""
        changed = [name for name, level in status.levels.items() if self._last[name] != level]
        self._last = dict(status.levels)
        return changed
