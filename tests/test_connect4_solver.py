"""The Connect Four solver against hand-made positions, a brute-force reference, our own
labelled positions, and (when ``../shared`` is present) the perfect-play test sets."""

from __future__ import annotations

import random
import time
from functools import cache
from pathlib import Path

import pytest

from rlloop.games import connect4_solver as c4

SHARED_SETS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "connect4"
OWN_POSITIONS = Path(__file__).resolve().parents[1] / "rlloop" / "data" / "connect4_positions.txt"


# --- An independent brute-force reference (plain minimax on a grid, no pruning or tables) ---


def _grid(moves: str) -> tuple[list[list[int]], int]:
    grid = [[0] * 6 for _ in range(7)]  # grid[col][row], row 0 at the bottom; 1/2 = player
    for i, ch in enumerate(moves):
        col = int(ch) - 1
        grid[col][grid[col].index(0)] = 1 + i % 2
    return grid, len(moves)


def _four_through(grid: list[list[int]], col: int, row: int) -> bool:
    who = grid[col][row]
    for dc, dr in ((1, 0), (0, 1), (1, 1), (1, -1)):
        run = 1
        for sign in (1, -1):
            c, r = col + sign * dc, row + sign * dr
            while 0 <= c < 7 and 0 <= r < 6 and grid[c][r] == who:
                run += 1
                c, r = c + sign * dc, r + sign * dr
        if run >= 4:
            return True
    return False


@cache
def _reference(moves: str) -> int:
    """Score for the side to move of a non-terminal position, by exhaustive minimax."""
    grid, n = _grid(moves)
    if n == 42:
        return 0
    best = -99
    for col in range(7):
        if grid[col][5]:
            continue
        row = grid[col].index(0)
        grid[col][row] = 1 + n % 2
        # A win by the move that makes n + 1 stones is worth (43 - n) // 2 to the mover.
        score = (
            (43 - n) // 2 if _four_through(grid, col, row) else -_reference(moves + str(col + 1))
        )
        grid[col][row] = 0
        best = max(best, score)
    return best


def _random_game_prefix(rng: random.Random, ply: int) -> str | None:
    grid = [[0] * 6 for _ in range(7)]
    moves = ""
    for i in range(ply):
        col = rng.choice([c for c in range(7) if not grid[c][5]])
        row = grid[col].index(0)
        grid[col][row] = 1 + i % 2
        if _four_through(grid, col, row):
            return None
        moves += str(col + 1)
    return moves


def _near_end_positions(count: int, ply: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out: list[str] = []
    while len(out) < count:
        moves = _random_game_prefix(rng, ply)
        if moves is not None:
            out.append(moves)
    return out


def _is_unfinished_legal_game(moves: str) -> bool:
    grid = [[0] * 6 for _ in range(7)]
    for i, ch in enumerate(moves):
        if ch not in "1234567" or grid[int(ch) - 1][5]:
            return False
        col = int(ch) - 1
        row = grid[col].index(0)
        grid[col][row] = 1 + i % 2
        if _four_through(grid, col, row):
            return False
    return len(moves) < 42


# --- Hand-made positions ---


def test_immediate_win_scores_22_minus_stones() -> None:
    # First player has columns 1-3 on the bottom row and wins in column 4 with its 4th stone.
    # (analyze() would have to solve the other, 7-move, positions: slow in pure Python.)
    assert c4.solve("112233") == 18
    # Vertical: first player stacks column 1; second player column 2.
    assert c4.solve("121212") == 18
    # Second player wins with its 4th stone: 22 - 4 again.
    assert c4.solve("7121212") == 18


def test_unstoppable_double_threat_is_a_loss() -> None:
    # First player holds columns 3-5 on the bottom with both ends open: whatever the second
    # player does, it loses to the first player's 4th stone.
    assert c4.solve("33445") == -18
    assert c4.analyze("33445") == [-18] * 7


def test_finished_games() -> None:
    # The previous move made four: the side to move has lost to a 4-stone win.
    assert c4.solve("1212121") == -18
    assert c4.analyze("1212121") == [None] * 7
    assert c4.solve("112233") == -c4.solve("1122334") == 18


# A complete 42-move game in which nobody connects four (found by random play).
DRAWN_GAME = "441365675334466335442232661515577771217122"


def test_draw_on_a_near_full_board() -> None:
    grid, n = _grid(DRAWN_GAME)
    assert n == 42 and all(all(column) for column in grid)
    assert not any(_four_through(grid, c, r) for c in range(7) for r in range(6))
    assert c4.solve(DRAWN_GAME) == 0  # full board, no four
    assert c4.analyze(DRAWN_GAME) == [None] * 7
    # One move from the end the last empty cell is a draw whichever side plays it.
    assert c4.solve(DRAWN_GAME[:41]) == 0
    assert [s for s in c4.analyze(DRAWN_GAME[:41]) if s is not None] == [0]
    for cut in (40, 38, 36, 33):
        position = DRAWN_GAME[:cut]
        assert c4.solve(position) == _reference(position), cut
        assert c4.analyze(position) == [
            None if position.count(str(c)) == 6 else -_reference_or_win(position, c)
            for c in range(1, 8)
        ], cut


def _reference_or_win(moves: str, col: int) -> int:
    """Minus the mover's score of playing ``col``: for comparing with analyze() entries."""
    grid, n = _grid(moves)
    row = grid[col - 1].index(0)
    grid[col - 1][row] = 1 + n % 2
    if _four_through(grid, col - 1, row):
        return -((43 - n) // 2)
    return _reference(moves + str(col))


def test_matches_brute_force_on_random_near_end_positions() -> None:
    positions = _near_end_positions(60, 34, seed=1) + _near_end_positions(20, 32, seed=2)
    for moves in positions:
        expected = _reference(moves)
        assert c4.solve(moves) == expected, moves
        scores = c4.analyze(moves)
        assert max(s for s in scores if s is not None) == expected, moves
    assert len({_reference(m) for m in positions}) >= 3  # wins, losses and draws all occur


def test_analyze_agrees_with_solve() -> None:
    rng = random.Random(7)
    checked = 0
    while checked < 30:
        moves = _random_game_prefix(rng, rng.randrange(18, 36))
        if moves is None:
            continue
        scores = c4.analyze(moves)
        assert max(s for s in scores if s is not None) == c4.solve(moves), moves
        for col, score in enumerate(scores):
            column = str(col + 1)
            if moves.count(column) == 6:
                assert score is None
                continue
            assert score is not None
            child = moves + column
            # An immediate win is scored directly; any other move is minus the child's score.
            assert score == -c4.solve(child), (moves, column)
        checked += 1


def _sign(score: int | None) -> int | None:
    return None if score is None else (score > 0) - (score < 0)


def test_weak_gives_the_outcome() -> None:
    rng = random.Random(3)
    checked = 0
    while checked < 25:
        moves = _random_game_prefix(rng, rng.randrange(20, 36))
        if moves is None:
            continue
        assert c4.solve(moves, weak=True) == _sign(c4.solve(moves)), moves
        assert c4.analyze(moves, weak=True) == [_sign(s) for s in c4.analyze(moves)], moves
        checked += 1
    assert c4.solve("1212121", weak=True) == -1
    assert c4.solve("121212", weak=True) == 1


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    c4.main(["solve", "33445", "121212"])
    out = capsys.readouterr().out
    assert "33445  score -18  (" in out and "121212  score 18  (" in out
    c4.main(["solve", "--analyze", "33445"])
    out = capsys.readouterr().out
    assert "33445  score -18  columns 1:-18  2:-18  3:-18  4:-18" in out
    with pytest.raises(SystemExit):
        c4.main(["solve", "44a"])
    assert "invalid character 'a' at position 3" in capsys.readouterr().err
    out_file = tmp_path / "positions.txt"
    args = ["--per-ply", "2", "--min-ply", "36", "--max-ply", "37", "--seed", "1"]
    c4.main(["generate", "--out", str(out_file), *args])
    positions = c4.load_positions(out_file)
    assert [len(p.moves) for p in positions] == [36, 36, 37, 37]
    assert all(p.move_scores is not None for p in positions)
    capsys.readouterr()
    c4.main(["bench", str(out_file)])
    assert "4 positions, 0 mismatches" in capsys.readouterr().out
    c4.main(["bench", str(out_file), "--analyze", "--weak", "--every", "2"])
    assert "2 positions, 0 mismatches" in capsys.readouterr().out


def test_tiny_table_still_exact() -> None:
    # A table that keeps being emptied mid-search must only cost time, never correctness.
    positions = _near_end_positions(10, 26, seed=11)
    expected = [c4.solve(m) for m in positions]
    c4.set_cache_limit(20)
    try:
        c4.clear_cache()
        assert [c4.solve(m) for m in positions] == expected
    finally:
        c4.set_cache_limit(c4.DEFAULT_TABLE_ENTRIES)
    with pytest.raises(ValueError, match="positive number of entries, got 0"):
        c4.set_cache_limit(0)


# --- Errors ---


@pytest.mark.parametrize(
    ("moves", "message"),
    [
        ("4458", r"invalid character '8' at position 4 of '4458': moves are column digits 1-7"),
        ("44a", r"invalid character 'a' at position 3"),
        ("0", r"invalid character '0' at position 1"),
        ("4 4", r"invalid character ' ' at position 2"),
        ("1111111", r"move 7 of '1111111' plays column 1, which is already full"),
        (
            "12121212",
            r"move 8 \('2'\) in '12121212' comes after the game was already won by move 7",
        ),
    ],
)
def test_invalid_notation_names_the_bad_move(moves: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        c4.solve(moves)
    with pytest.raises(ValueError, match=message):
        c4.analyze(moves)


def test_non_string_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="must be a str of column digits 1-7, got int"):
        c4.solve(4453)  # type: ignore[arg-type]


def test_parse_line_rejects_wrong_field_count() -> None:
    with pytest.raises(ValueError, match="got 3 fields"):
        c4.parse_line("4453 2 1")
    assert c4.parse_line("4453 -2") == c4.LabelledPosition("4453", -2)
    line = "4453 2 x -1 0 2 1 -3 x"
    assert c4.parse_line(line).to_line() == line


# --- Generated positions ---


def test_generate_positions_is_stratified_reproducible_and_exact() -> None:
    wanted = {24: 3, 33: 4, 38: 2}
    first = c4.generate_positions(wanted, seed=5)
    assert first == c4.generate_positions(wanted, seed=5)
    assert [len(p.moves) for p in first] == [24] * 3 + [33] * 4 + [38] * 2
    assert len({p.moves for p in first}) == len(first)
    for pos in first:
        assert pos.move_scores is not None
        assert pos.score == max(s for s in pos.move_scores if s is not None)
        if len(pos.moves) >= 33:
            assert pos.score == _reference(pos.moves)
    with pytest.raises(ValueError, match="ply 42 out of range"):
        c4.sample_positions({42: 1})
    with pytest.raises(ValueError, match="could not find 8 distinct non-terminal positions"):
        c4.sample_positions({1: 8})  # only 7 positions exist after one move


def test_committed_positions_resolve() -> None:
    positions = c4.load_bundled_positions()
    assert c4.BUNDLED_POSITIONS == OWN_POSITIONS
    assert len(positions) >= 200
    plies = {len(p.moves) for p in positions}
    assert min(plies) <= 12 and max(plies) >= 40 and len(plies) >= 25
    for pos in positions:
        # Every line is a legal, unfinished position (checked with the reference's rules).
        assert _is_unfinished_legal_game(pos.moves), pos.moves
    # Re-solve a sample across plies, avoiding the slowest openings.
    sample = [p for p in positions if len(p.moves) >= 16][::3]
    start = time.perf_counter()
    for pos in sample:
        assert c4.solve(pos.moves) == pos.score, pos.moves
        if pos.move_scores is not None:
            assert tuple(c4.analyze(pos.moves)) == pos.move_scores, pos.moves
    assert time.perf_counter() - start < 60


# --- The perfect-play test sets in ../shared (skipped when absent) ---


def _check_set(name: str, every: int = 1) -> None:
    path = SHARED_SETS / c4.SHARED_TEST_SETS[name]
    if not path.is_file():
        pytest.skip(f"shared test set {path} is absent")
    positions = c4.load_positions(path)[::every]
    assert positions
    wrong = [(p.moves, p.score, c4.solve(p.moves)) for p in positions]
    wrong = [w for w in wrong if w[1] != w[2]]
    assert not wrong, (
        f"{len(wrong)} of {len(positions)} wrong, e.g. (moves, file, ours) {wrong[:5]}"
    )


def test_end_easy_all() -> None:
    _check_set("end-easy")


def test_middle_easy_all() -> None:
    _check_set("middle-easy")


def test_middle_medium_sample() -> None:
    _check_set("middle-medium", every=40)


def test_begin_easy_sample() -> None:
    _check_set("begin-easy", every=20)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["middle-medium", "begin-easy"])
def test_full_set(name: str) -> None:
    _check_set(name)


@pytest.mark.slow
def test_begin_medium_sample() -> None:
    # The full set takes about an hour in pure Python (see docs/connect4_solver.md).
    _check_set("begin-medium", every=20)
