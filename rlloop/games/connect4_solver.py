"""Exact Connect Four solver in pure Python, and labelled positions generated with it.

Notation
    A position is the string of columns played from the empty board, one digit ``1``-``7``
    per move (``1`` = leftmost column), first player first: ``"4453"`` is four moves. This is
    the notation of the perfect-play test sets in ``../shared/data/connect4/``.

Score convention (as in those test sets)
    Scores are from the point of view of the side to move. A positive score means the side
    to move wins with perfect play, and equals ``22 - k`` where ``k`` is the number of stones
    the winner has on the board once it has played the winning move (winning sooner scores
    higher: winning with one's 4th stone scores 18). A negative score means the opponent
    wins, ``-(22 - k)`` with ``k`` the opponent's stone count at its win. 0 is a draw.
    Equivalently, a win by the move that brings the board to ``m`` stones is worth
    ``(44 - m) // 2`` to the winner. Scores lie in [-21, 21]; a finished game scores
    0 (full board, no four) or ``-(22 - k)`` (the previous move won; the side to move lost).

Algorithm
    Negamax with alpha-beta pruning on 49-bit bitboards held in Python ints (column-major,
    7 bits per column: 6 cells plus an always-empty guard bit, so shifts never carry a stone
    from one column's top into the next column's bottom). Only moves that do not hand the
    opponent an immediate win are searched; they are ordered centre-first, then by how many
    winning cells ("threats") the move creates. A transposition table keyed by the position
    (``current + mask`` is unique per position) keeps the best known lower or upper bound.
    The root runs a sequence of null-window searches (is the score > x?) that binary-searches
    the exact score, as described in Pascal Pons' "Solving Connect 4" tutorial; narrow windows
    cut far more than one full-window search.

Speed (CPU per position, see ``docs/connect4_solver.md``): end-easy 0.2 ms, middle-easy
1.3 ms, middle-medium 0.1 s, begin-easy 10 ms, begin-medium 3.4 s on average (up to a minute
and a half). Hard positions with under ~10 moves are out of reach of pure Python.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

WIDTH = 7
HEIGHT = 6
CELLS = WIDTH * HEIGHT  # 42

_H1 = HEIGHT + 1  # bits per column, including the guard bit


def _bottom(col: int) -> int:
    return 1 << (col * _H1)


def _column(col: int) -> int:
    return ((1 << HEIGHT) - 1) << (col * _H1)


def _top(col: int) -> int:
    return 1 << (HEIGHT - 1 + col * _H1)


BOTTOM = sum(_bottom(c) for c in range(WIDTH))
BOARD = BOTTOM * ((1 << HEIGHT) - 1)  # every playable cell
COLUMN_MASKS = tuple(_column(c) for c in range(WIDTH))
TOP_MASKS = tuple(_top(c) for c in range(WIDTH))
BOTTOM_MASKS = tuple(_bottom(c) for c in range(WIDTH))
# Columns searched centre-first: central columns take part in more lines of four.
CENTRE_ORDER = (3, 2, 4, 1, 5, 0, 6)
_ORDER_MASKS = tuple(COLUMN_MASKS[c] for c in CENTRE_ORDER)

# Transposition-table values: upper bounds are stored as ``bound + _TT_UPPER`` (> 0), lower
# bounds as ``bound - _TT_UPPER`` (< 0); scores are within ±21 so the two never overlap.
# Only bounds are stored: with null windows nearly every result is a bound, and a bound is
# valid for any later window.
_TT_UPPER = 64
DEFAULT_TABLE_ENTRIES = 4_000_000  # ~300 MB of Python dict at most; emptied when exceeded

# Names of the perfect-play test sets (files in ``../shared/data/connect4/``): L3 positions
# have 29-41 moves, L2 15-28, L1 4-14; R1 are the easy ones, R2 the medium ones.
SHARED_TEST_SETS = {
    "end-easy": "Test_L3_R1",
    "middle-easy": "Test_L2_R1",
    "middle-medium": "Test_L2_R2",
    "begin-easy": "Test_L1_R1",
    "begin-medium": "Test_L1_R2",
}

_table: dict[int, int] = {}
_table_limit = DEFAULT_TABLE_ENTRIES
_nodes = 0


def _winning_cells(stones: int, mask: int) -> int:
    """Empty cells (bitboard) where one more stone of ``stones`` would make four in a row."""
    # Vertical: three stones directly below an empty cell.
    r = (stones << 1) & (stones << 2) & (stones << 3)
    # Horizontal (shift 7) and the two diagonals (6 and 8): the empty cell can be at either
    # end of three stones, or in one of the two inner gaps (checked from both sides).
    for s in (_H1, _H1 - 1, _H1 + 1):
        p = (stones << s) & (stones << (2 * s))
        r |= p & (stones << (3 * s))
        r |= p & (stones >> s)
        p = (stones >> s) & (stones >> (2 * s))
        r |= p & (stones << s)
        r |= p & (stones >> (3 * s))
    return r & (BOARD ^ mask)


def _has_four(stones: int) -> bool:
    """True when ``stones`` (one player's bitboard) holds four in a row."""
    for s in (1, _H1, _H1 - 1, _H1 + 1):
        m = stones & (stones >> s)
        if m & (m >> (2 * s)):
            return True
    return False


def _negamax(current: int, mask: int, moves: int, alpha: int, beta: int, opp_win: int) -> int:
    """Score of the position within the window: exact if in (alpha, beta), else a bound.

    ``current`` holds the stones of the side to move, ``mask`` all stones, ``moves`` their
    count, ``opp_win`` the cells where the opponent would complete four (passed down by the
    parent, which already computed it for move ordering). Precondition: the side to move
    cannot win with its next move, and the board is not full.
    """
    global _nodes
    _nodes += 1
    possible = (mask + BOTTOM) & BOARD
    forced = possible & opp_win
    if forced:
        if forced & (forced - 1):
            # Two open threats: one is blocked, the opponent plays the other.
            return -((CELLS - moves) // 2)
        possible = forced
    # Never play directly below a cell where the opponent would win.
    candidates = possible & ~(opp_win >> 1)
    if not candidates:
        return -((CELLS - moves) // 2)
    if moves >= CELLS - 2:
        return 0  # neither side can still win: we have a safe move, then one cell remains

    # The opponent cannot win on its next move, and we cannot win on this one.
    low = -((CELLS - 2 - moves) // 2)
    if alpha < low:
        alpha = low
        if alpha >= beta:
            return alpha
    high = (CELLS - 1 - moves) // 2
    key = current + mask
    entry = _table.get(key)
    if entry is not None:
        if entry > 0:
            bound = entry - _TT_UPPER
            if bound < high:
                high = bound
        else:
            bound = entry + _TT_UPPER
            if bound > alpha:
                alpha = bound
                if alpha >= beta:
                    return alpha
    if beta > high:
        beta = high
        if alpha >= beta:
            return beta

    # Order: more threats created first, ties centre first. The sort key packs the threat
    # count above a rank (7 for the centre column down to 1 for the edges), so a descending
    # sort does both and never has to compare the rest of the tuple.
    board_free = BOARD ^ mask
    opponent = current ^ mask
    ordered = []
    rank = 7
    for col_mask in _ORDER_MASKS:
        move = candidates & col_mask
        if move:
            child = _table.get(opponent + (mask | move))
            if child is not None and child > 0 and _TT_UPPER - child >= beta:
                # Enhanced transposition cutoff: a child already known to be bad enough
                # for the opponent refutes this window without a search.
                score = _TT_UPPER - child
                _table[key] = score - _TT_UPPER  # lower bound
                return score
            mine = current | move
            # _winning_cells(mine, mask | move), inlined (it runs for every candidate of
            # every node); it is also the child's opp_win.
            r = (mine << 1) & (mine << 2) & (mine << 3)
            p = (mine << 7) & (mine << 14)
            r |= p & (mine << 21)
            r |= p & (mine >> 7)
            p = (mine >> 7) & (mine >> 14)
            r |= p & (mine << 7)
            r |= p & (mine >> 21)
            p = (mine << 6) & (mine << 12)
            r |= p & (mine << 18)
            r |= p & (mine >> 6)
            p = (mine >> 6) & (mine >> 12)
            r |= p & (mine << 6)
            r |= p & (mine >> 18)
            p = (mine << 8) & (mine << 16)
            r |= p & (mine << 24)
            r |= p & (mine >> 8)
            p = (mine >> 8) & (mine >> 16)
            r |= p & (mine << 8)
            r |= p & (mine >> 24)
            r &= board_free ^ move
            ordered.append(((r.bit_count() << 3) | rank, move, r))
        rank -= 1
    if len(ordered) > 1:
        ordered.sort(reverse=True)

    for _, move, threats in ordered:
        score = -_negamax(opponent, mask | move, moves + 1, -beta, -alpha, threats)
        if score >= beta:
            _table[key] = score - _TT_UPPER  # lower bound
            if len(_table) > _table_limit:
                _table.clear()
            return score
        if score > alpha:
            alpha = score
    _table[key] = alpha + _TT_UPPER  # upper bound
    if len(_table) > _table_limit:
        _table.clear()
    return alpha


def _parse(moves: str) -> tuple[int, int, int, bool]:
    """Replay ``moves``; return (side-to-move stones, all stones, move count, last move won).

    Raises ValueError naming the first bad character and its 1-based position.
    """
    if not isinstance(moves, str):
        raise TypeError(f"moves must be a str of column digits 1-7, got {type(moves).__name__}")
    current = mask = 0
    won = False
    for i, ch in enumerate(moves):
        if won:
            raise ValueError(
                f"move {i + 1} ({ch!r}) in {moves!r} comes after the game was already won by "
                f"move {i}; a position string must stop at the winning move"
            )
        if ch not in "1234567":
            raise ValueError(
                f"invalid character {ch!r} at position {i + 1} of {moves!r}: "
                "moves are column digits 1-7"
            )
        col = ord(ch) - 49  # '1' -> 0
        if mask & TOP_MASKS[col]:
            raise ValueError(
                f"move {i + 1} of {moves!r} plays column {ch}, which is already full "
                f"({HEIGHT} stones)"
            )
        move = (mask + BOTTOM_MASKS[col]) & COLUMN_MASKS[col]
        mover = current | move
        mask |= move
        won = _has_four(mover)
        current = mover ^ mask  # the other side is to move now
    return current, mask, len(moves), won


def _solve_bits(current: int, mask: int, moves: int, won: bool, weak: bool = False) -> int:
    if won:
        # The previous move made four; the side to move has lost.
        return -1 if weak else -((CELLS + 2 - moves) // 2)
    if moves == CELLS:
        return 0
    possible = (mask + BOTTOM) & BOARD
    if possible & _winning_cells(current, mask):
        return 1 if weak else (CELLS + 1 - moves) // 2
    opp_win = _winning_cells(current ^ mask, mask)
    low = -((CELLS - moves) // 2)
    high = (CELLS + 1 - moves) // 2
    if weak:
        # Only the sign is wanted: search [-1, 1], at most two null windows.
        low, high = max(low, -1), min(high, 1)
    # Binary search on the score with null windows [x, x + 1]. The first probes are pulled
    # towards 0 because most positions' scores are small in magnitude and probes near the
    # true score are the cheapest.
    while low < high:
        mid = low + (high - low) // 2
        if mid <= 0 and -(-low // 2) < mid:
            mid = -(-low // 2)  # low / 2 rounded towards zero
        elif mid >= 0 and high // 2 > mid:
            mid = high // 2
        score = _negamax(current, mask, moves, mid, mid + 1, opp_win)
        if score <= mid:
            high = score
        else:
            low = score
    if weak:
        # Search results are bounds that may lie outside the clamped [-1, 1].
        return (low > 0) - (low < 0)
    return low


def solve(moves: str, *, weak: bool = False) -> int:
    """Exact score of the position reached by ``moves``, for the side to move.

    ``moves``: column digits 1-7 from the empty board (``""`` is the empty board, which pure
    Python cannot solve in reasonable time). Returns an int in [-21, 21]: > 0 the side to move
    wins (22 minus the winner's final stone count), < 0 it loses, 0 draw. A finished game
    scores 0 (full board) or the loss of the side to move. ``weak=True`` returns only the
    outcome, 1 / 0 / -1 (win / draw / loss), typically several times faster.
    Raises ValueError on a bad string (see the module docstring for the notation).
    """
    return _solve_bits(*_parse(moves), weak=weak)


def analyze(moves: str, *, weak: bool = False) -> list[int | None]:
    """Score of each column 1-7 (list index 0-6) for the side to move, ``None`` if unplayable.

    Each score is from the point of view of the side to move *before* the move, in the
    convention of ``solve``: ``analyze(m)[c - 1] == -solve(m + str(c))``, and an immediately
    winning move scores ``22 - k``. ``max`` over the playable columns equals ``solve(m)``.
    A full column, or every column of a finished game, gives ``None``. ``weak=True`` gives
    only each move's outcome, 1 / 0 / -1, i.e. ``-solve(m + str(c), weak=True)``.
    """
    current, mask, n, won = _parse(moves)
    scores: list[int | None] = [None] * WIDTH
    if won or n == CELLS:
        return scores
    opponent = current ^ mask
    for col in CENTRE_ORDER:  # centre first: the table then helps the side columns most
        if mask & TOP_MASKS[col]:
            continue
        move = (mask + BOTTOM_MASKS[col]) & COLUMN_MASKS[col]
        if _has_four(current | move):
            scores[col] = 1 if weak else (CELLS + 1 - n) // 2
        else:
            scores[col] = -_solve_bits(opponent, mask | move, n + 1, False, weak)
    return scores


def clear_cache() -> None:
    """Empty the transposition table (shared by all calls; entries stay valid across calls)."""
    _table.clear()


def set_cache_limit(entries: int) -> None:
    """Cap the transposition table at ``entries`` positions (~75 bytes each); it is emptied
    whenever it grows past the cap. Default ``DEFAULT_TABLE_ENTRIES``."""
    global _table_limit
    if entries < 1:
        raise ValueError(f"cache limit must be a positive number of entries, got {entries}")
    _table_limit = entries


def nodes_searched() -> int:
    """Number of negamax nodes visited since the module was loaded (for benchmarks)."""
    return _nodes


# ---------------------------------------------------------------------------------------------
# Labelled positions


@dataclass(frozen=True)
class LabelledPosition:
    """A position with its exact score and, optionally, each column's score (see ``analyze``)."""

    moves: str
    score: int
    move_scores: tuple[int | None, ...] | None = None

    def to_line(self) -> str:
        """``<moves> <score>`` plus, when known, 7 column scores (``x`` = unplayable)."""
        parts = [self.moves, str(self.score)]
        if self.move_scores is not None:
            parts += ["x" if s is None else str(s) for s in self.move_scores]
        return " ".join(parts)


def parse_line(line: str) -> LabelledPosition:
    """Inverse of ``LabelledPosition.to_line``; also reads the shared test sets' lines."""
    parts = line.split()
    if len(parts) not in (2, 2 + WIDTH):
        raise ValueError(
            f"expected '<moves> <score>' optionally followed by {WIDTH} column scores, "
            f"got {len(parts)} fields in {line!r}"
        )
    move_scores = None
    if len(parts) > 2:
        move_scores = tuple(None if p == "x" else int(p) for p in parts[2:])
    return LabelledPosition(parts[0], int(parts[1]), move_scores)


def load_positions(path: str | Path) -> list[LabelledPosition]:
    """Read a file of ``parse_line`` lines (blank lines skipped)."""
    out = []
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append(parse_line(line))
        except ValueError as err:
            raise ValueError(f"{path}:{number}: {err}") from None
    return out


# Our own solver-labelled positions (random reachable positions, 8 per ply for plies 10-41,
# each with its 7 column scores), so benchmarks work without ../shared.
BUNDLED_POSITIONS = Path(__file__).resolve().parents[1] / "data" / "connect4_positions.txt"


def load_bundled_positions() -> list[LabelledPosition]:
    """The positions in ``BUNDLED_POSITIONS`` (see ``docs/connect4_solver.md``)."""
    return load_positions(BUNDLED_POSITIONS)


def save_positions(path: str | Path, positions: Iterable[LabelledPosition]) -> None:
    """Write positions one ``to_line`` per line."""
    Path(path).write_text("".join(p.to_line() + "\n" for p in positions))


def _random_position(rng: random.Random, ply: int) -> str | None:
    """Moves of a uniformly random game of ``ply`` moves, or None if someone won on the way."""
    current = mask = 0
    digits = []
    for _ in range(ply):
        legal = [c for c in range(WIDTH) if not mask & TOP_MASKS[c]]
        col = rng.choice(legal)
        move = (mask + BOTTOM_MASKS[col]) & COLUMN_MASKS[col]
        mover = current | move
        mask |= move
        if _has_four(mover):
            return None
        current = mover ^ mask
        digits.append(str(col + 1))
    return "".join(digits)


def sample_positions(num_per_ply: Mapping[int, int], seed: int = 0) -> list[str]:
    """Distinct random reachable non-terminal positions, ``num_per_ply[p]`` with ``p`` moves.

    Each is the prefix of a game of uniformly random legal moves in which nobody has yet
    connected four (such games are resampled). Transpositions count as one position.
    ``p`` must be in [0, 41]; ply order and count fix the output for a given seed.
    """
    rng = random.Random(seed)
    out = []
    for ply, count in sorted(num_per_ply.items()):
        if not 0 <= ply < CELLS:
            raise ValueError(f"ply {ply} out of range: a non-terminal position has 0-41 moves")
        if count < 0:
            raise ValueError(f"count for ply {ply} must be >= 0, got {count}")
        seen: set[int] = set()
        attempts = 0
        while len(seen) < count:
            attempts += 1
            if attempts > 1000 * (count + 10):
                raise ValueError(
                    f"could not find {count} distinct non-terminal positions at ply {ply} "
                    f"(found {len(seen)}); ask for fewer"
                )
            moves = _random_position(rng, ply)
            if moves is None:
                continue
            current, mask, _, _ = _parse(moves)
            key = current + mask
            if key not in seen:
                seen.add(key)
                out.append(moves)
    return out


def generate_positions(
    num_per_ply: Mapping[int, int] | int,
    seed: int = 0,
    *,
    plies: Iterable[int] = range(16, CELLS),
    move_scores: bool = True,
    progress: bool = False,
) -> list[LabelledPosition]:
    """Random reachable non-terminal positions stratified by move number, solved exactly.

    ``num_per_ply``: positions wanted per ply (number of moves played), as a mapping, or one
    int used for every ply in ``plies``. ``move_scores``: also run ``analyze`` (about one
    extra solve per column, i.e. several times slower). Positions come sorted by ply. Pure
    Python solves middle-game positions (15+ moves) in well under a second on average, but
    openings can take minutes each; see ``docs/connect4_solver.md``.
    """
    if isinstance(num_per_ply, int):
        num_per_ply = dict.fromkeys(plies, num_per_ply)
    moves_list = sample_positions(num_per_ply, seed)
    out = []
    start = time.perf_counter()
    for i, moves in enumerate(moves_list):
        if move_scores:
            per_move = analyze(moves)
            score = max(s for s in per_move if s is not None)
            out.append(LabelledPosition(moves, score, tuple(per_move)))
        else:
            out.append(LabelledPosition(moves, solve(moves)))
        if progress:
            print(
                f"\r{i + 1}/{len(moves_list)} positions, {time.perf_counter() - start:.1f} s",
                end="",
                file=sys.stderr,
                flush=True,
            )
    if progress:
        print(file=sys.stderr)
    return out


# ---------------------------------------------------------------------------------------------
# Command line


def _cmd_solve(args: argparse.Namespace) -> None:
    for moves in args.moves:
        moves = "" if moves == "-" else moves
        start = time.perf_counter()
        if args.analyze:
            scores = analyze(moves, weak=args.weak)
            playable = [s for s in scores if s is not None]
            score = max(playable) if playable else solve(moves, weak=args.weak)
            columns = "  ".join(f"{c + 1}:{'x' if s is None else s}" for c, s in enumerate(scores))
            columns = f"  columns {columns}"
        else:
            score, columns = solve(moves, weak=args.weak), ""
        elapsed = time.perf_counter() - start
        print(f"{moves or '(empty)'}  score {score}{columns}  ({elapsed:.3f} s)")


def _cmd_generate(args: argparse.Namespace) -> None:
    plies = range(args.min_ply, args.max_ply + 1)
    positions = generate_positions(
        args.per_ply, args.seed, plies=plies, move_scores=not args.no_move_scores, progress=True
    )
    save_positions(args.out, positions)
    print(f"wrote {len(positions)} positions to {args.out}")


def _cmd_bench(args: argparse.Namespace) -> None:
    positions = load_positions(args.file)[:: args.every][: args.limit]
    times = []
    wrong = []
    nodes_before = _nodes
    wall_start = time.perf_counter()
    for pos in positions:
        if not args.keep_cache:
            clear_cache()
        # CPU time of this process, so that other jobs on the machine do not inflate it.
        start = time.process_time()
        if args.analyze:
            per_move = analyze(pos.moves, weak=args.weak)
            score = max(s for s in per_move if s is not None)
        else:
            score = solve(pos.moves, weak=args.weak)
        times.append(time.process_time() - start)
        expected = (pos.score > 0) - (pos.score < 0) if args.weak else pos.score
        if score != expected:
            wrong.append(f"{pos.moves}: solver {score}, file {pos.score}")
    for line in wrong:
        print("MISMATCH", line)
    n = len(times)
    ordered = sorted(times)
    print(
        f"{args.file}: {n} positions, {len(wrong)} mismatches; CPU time per position mean "
        f"{sum(times) / n * 1e3:.2f} ms, median {ordered[n // 2] * 1e3:.2f} ms, max "
        f"{ordered[-1] * 1e3:.1f} ms; total {sum(times):.1f} s CPU, "
        f"{time.perf_counter() - wall_start:.1f} s wall; "
        f"mean nodes {(_nodes - nodes_before) / n:.0f}"
    )
    if wrong:
        sys.exit(1)


def main(argv: list[str] | None = None) -> None:
    """``python -m rlloop.games.connect4_solver {solve,generate,bench} ...``; see ``--help``."""
    parser = argparse.ArgumentParser(
        prog="python -m rlloop.games.connect4_solver",
        description="Exact Connect Four solver (scores: >0 side to move wins, 22 - stones).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("solve", help="print the score (and each column's score) of positions")
    p.add_argument(
        "moves",
        nargs="+",
        help="column digits 1-7 from the empty board, e.g. 4453 ('-': empty); under ~10 "
        "moves this can take minutes or more",
    )
    p.add_argument("--weak", action="store_true", help="only win (1) / draw (0) / loss (-1)")
    p.add_argument("--analyze", action="store_true", help="also each column's score (slower)")
    p.set_defaults(func=_cmd_solve)
    p = sub.add_parser("generate", help="write random positions labelled by the solver")
    p.add_argument("--out", required=True, type=Path, help="output file")
    p.add_argument("--per-ply", type=int, default=10, help="positions per ply (default 10)")
    p.add_argument("--min-ply", type=int, default=16, help="fewest moves played (default 16)")
    p.add_argument("--max-ply", type=int, default=41, help="most moves played (default 41)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-move-scores", action="store_true", help="only the position score (faster)")
    p.set_defaults(func=_cmd_generate)
    p = sub.add_parser("bench", help="time the solver on a '<moves> <score>' file")
    p.add_argument("file", type=Path)
    p.add_argument("--limit", type=int, default=None, help="at most this many positions")
    p.add_argument("--every", type=int, default=1, help="take every k-th line (default 1)")
    p.add_argument("--keep-cache", action="store_true", help="keep the table between positions")
    p.add_argument("--weak", action="store_true", help="only check win / draw / loss")
    p.add_argument(
        "--analyze", action="store_true", help="time analyze() (max over moves is checked)"
    )
    p.set_defaults(func=_cmd_bench)
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except ValueError as err:  # bad notation or file line: a usage error, not a crash
        parser.error(str(err))


if __name__ == "__main__":
    main()
