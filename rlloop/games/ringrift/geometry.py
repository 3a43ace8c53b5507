"""RingRift board geometry: cell order, directions, rays and adjacency tables (RULES R1–R9).

Every table is built once, host-side with numpy, when a board is first requested. Cells are
numbered in the canonical scan order of R3 (square: ``index = x * size + y``; hex: ``x`` from
-r to r outer, ``y`` inner). Index ``N`` (the cell count) is a *sentinel*: every neighbour or
ray step that leaves the board points to it, so lookups need no bounds branches.

Tables (``N1 = N + 1`` rows; the sentinel row points to the sentinel everywhere):

- ``ray``: int32 [N1, D, K] — cell reached after ``k + 1`` steps in movement direction ``d``
  (R4), ``K`` = longest ray of the board.
- ``axis_next`` / ``axis_prev``: int32 [N1, A] — one step forward / backward on line axis ``a``
  (R5).
- ``tadj``: int32 [N1, T] — territory adjacency (R6; square: 4 orthogonal, hex: 6).
- ``radj``: int32 [N1, D] — recovery adjacency (R7) = first ray step in each direction.
- ``badj``: int32 [N1, 8] — border-marker expansion adjacency (R7 [EXEC]; hex8 uses the square
  offsets; on ``hexagonal`` every entry is the sentinel, i.e. no expansion).
- ``rec_axis_of_dir``: int32 [D] — the line axis parallel to each movement direction.
- ``rec_axis_order``: int32 [A] — R61 tie order of axes for recovery lines.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

BOARD_TYPES = ("square8", "square19", "hex8", "hexagonal")

_SQUARE_DIRS = ((1, 0), (1, 1), (0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1))
_SQUARE_AXES = ((1, 0), (1, 1), (0, 1), (1, -1))
_SQUARE_RECOVERY_AXES = ((1, 0), (0, 1), (1, 1), (1, -1))
_SQUARE_TADJ = ((0, 1), (1, 0), (0, -1), (-1, 0))
_HEX_DIRS = ((1, 0, -1), (0, 1, -1), (-1, 1, 0), (-1, 0, 1), (0, -1, 1), (1, -1, 0))
_HEX_AXES = ((1, 0, -1), (1, -1, 0), (0, -1, 1))
_BADJ_OFFSETS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))

# R8: rings per player, base line length; R80: maximum reachable stack height.
_BOARD_PARAMS = {
    # type: (size, rings_per_player, base_line_length, max_height)
    "square8": (8, 18, 3, 8),
    "square19": (19, 72, 4, 19),
    "hex8": (9, 18, 4, 9),
    "hexagonal": (25, 96, 4, 25),
}


@dataclasses.dataclass(frozen=True, eq=False)
class Geometry:
    """Static description of one board type (host-side numpy tables; see module docstring)."""

    board_type: str
    size: int
    is_hex: bool
    radius: int
    num_cells: int  # N
    rings_per_player: int  # R (R8)
    base_line_length: int  # R8
    max_height: int  # ring slots per stack (R80 bound)
    coords: np.ndarray  # [N, 2] int32: (x, y); hex z = -x - y
    keys: tuple[str, ...]  # [N] fixture keys ("x,y" or "x,y,z")
    index: dict  # (x, y) -> cell index
    dirs: np.ndarray  # [D, 2] movement directions (x, y components)
    ray: np.ndarray  # [N1, D, K] int32
    axes: np.ndarray  # [A, 2]
    axis_next: np.ndarray  # [N1, A] int32
    axis_prev: np.ndarray  # [N1, A] int32
    tadj: np.ndarray  # [N1, T] int32
    radj: np.ndarray  # [N1, D] int32
    badj: np.ndarray  # [N1, 8] int32
    rec_axis_order: np.ndarray  # [A] int32 (R61 tie order)
    dir_axis: np.ndarray  # [D] int32: line axis parallel to each direction
    dir_sign: np.ndarray  # [D] int32: +1 if the direction is the axis vector, -1 if opposite
    grid: np.ndarray  # [N, 2] int32: (row, col) of each cell in the observation grid
    grid_shape: tuple[int, int]

    @property
    def num_dirs(self) -> int:
        return int(self.dirs.shape[0])

    @property
    def max_ray(self) -> int:
        return int(self.ray.shape[2])

    @property
    def num_axes(self) -> int:
        return int(self.axes.shape[0])

    def key(self, cell: int) -> str:
        return self.keys[cell]

    def cell_of(self, x: int, y: int) -> int:
        """Cell index of (x, y); raises KeyError when off-board."""
        return self.index[(int(x), int(y))]


def _cells(board_type: str, size: int) -> list[tuple[int, int]]:
    if board_type.startswith("square"):
        return [(x, y) for x in range(size) for y in range(size)]
    r = (size - 1) // 2
    out = []
    for x in range(-r, r + 1):
        for y in range(max(-r, -x - r), min(r, -x + r) + 1):
            out.append((x, y))
    return out


@functools.cache
def geometry(board_type: str) -> Geometry:
    """The (cached) geometry tables of ``board_type`` (one of :data:`BOARD_TYPES`)."""
    if board_type not in _BOARD_PARAMS:
        raise ValueError(f"unknown board type {board_type!r}; valid: {BOARD_TYPES}")
    size, rings, base, max_height = _BOARD_PARAMS[board_type]
    is_hex = board_type.startswith("hex")
    radius = (size - 1) // 2 if is_hex else 0
    cells = _cells(board_type, size)
    n = len(cells)
    index = {c: i for i, c in enumerate(cells)}

    def at(x: int, y: int) -> int:
        return index.get((x, y), n)

    if is_hex:
        dirs = np.array([d[:2] for d in _HEX_DIRS], dtype=np.int32)
        axes = np.array([a[:2] for a in _HEX_AXES], dtype=np.int32)
        rec_axes = axes.copy()
        tadj_off = dirs
        keys = tuple(f"{x},{y},{-x - y}" for x, y in cells)
    else:
        dirs = np.array(_SQUARE_DIRS, dtype=np.int32)
        axes = np.array(_SQUARE_AXES, dtype=np.int32)
        rec_axes = np.array(_SQUARE_RECOVERY_AXES, dtype=np.int32)
        tadj_off = np.array(_SQUARE_TADJ, dtype=np.int32)
        keys = tuple(f"{x},{y}" for x, y in cells)
    k_max = 2 * radius if is_hex else size - 1
    num_dirs = len(dirs)

    ray = np.full((n + 1, num_dirs, k_max), n, dtype=np.int32)
    for i, (x, y) in enumerate(cells):
        for d, (dx, dy) in enumerate(dirs):
            for k in range(k_max):
                ray[i, d, k] = at(x + (k + 1) * dx, y + (k + 1) * dy)
    num_axes = len(axes)
    axis_next = np.full((n + 1, num_axes), n, dtype=np.int32)
    axis_prev = np.full((n + 1, num_axes), n, dtype=np.int32)
    for i, (x, y) in enumerate(cells):
        for a, (dx, dy) in enumerate(axes):
            axis_next[i, a] = at(x + dx, y + dy)
            axis_prev[i, a] = at(x - dx, y - dy)
    tadj = np.full((n + 1, len(tadj_off)), n, dtype=np.int32)
    for i, (x, y) in enumerate(cells):
        for j, (dx, dy) in enumerate(tadj_off):
            tadj[i, j] = at(x + dx, y + dy)
    radj = ray[:, :, 0].copy()
    badj = np.full((n + 1, 8), n, dtype=np.int32)
    if board_type != "hexagonal":
        for i, (x, y) in enumerate(cells):
            for j, (dx, dy) in enumerate(_BADJ_OFFSETS):
                badj[i, j] = at(x + dx, y + dy)
    rec_axis_order = np.array(
        [next(a for a in range(num_axes) if tuple(axes[a]) == tuple(v)) for v in rec_axes],
        dtype=np.int32,
    )
    dir_axis = np.zeros(num_dirs, dtype=np.int32)
    dir_sign = np.zeros(num_dirs, dtype=np.int32)
    for d, v in enumerate(dirs):
        for a, ax in enumerate(axes):
            if tuple(v) == tuple(ax):
                dir_axis[d], dir_sign[d] = a, 1
            elif tuple(v) == tuple(-ax):
                dir_axis[d], dir_sign[d] = a, -1
    coords = np.array(cells, dtype=np.int32)
    if is_hex:
        # axial embedding: row = y + r, col = x + r  (a rhombus-shaped grid with holes)
        grid = np.stack([coords[:, 1] + radius, coords[:, 0] + radius], axis=1)
        grid_shape = (size, size)
    else:
        grid = np.stack([coords[:, 1], coords[:, 0]], axis=1)  # row = y, col = x
        grid_shape = (size, size)
    return Geometry(
        board_type=board_type,
        size=size,
        is_hex=is_hex,
        radius=radius,
        num_cells=n,
        rings_per_player=rings,
        base_line_length=base,
        max_height=max_height,
        coords=coords,
        keys=keys,
        index=index,
        dirs=dirs,
        ray=ray,
        axes=axes,
        axis_next=axis_next,
        axis_prev=axis_prev,
        tadj=tadj,
        radj=radj,
        badj=badj,
        rec_axis_order=rec_axis_order,
        dir_axis=dir_axis,
        dir_sign=dir_sign,
        grid=grid.astype(np.int32),
        grid_shape=grid_shape,
    )


def effective_line_length(board_type: str, num_players: int) -> int:
    """Effective line length L (R9)."""
    if board_type in ("square8", "hex8"):
        return 4 if num_players == 2 else 3
    return 4


def victory_threshold(board_type: str, num_players: int) -> int:
    """Ring-elimination victory threshold VT (R10)."""
    r = _BOARD_PARAMS[board_type][1]
    return round((2 / 3) * r + (1 / 3) * (num_players - 1) * r)


def territory_minimum(board_type: str, num_players: int) -> int:
    """Territory victory minimum TVM = floor(N / P) + 1 (R11, fresh-game value)."""
    return geometry(board_type).num_cells // num_players + 1
