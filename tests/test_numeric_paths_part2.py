"""Part 2 of 4 of the notebooks under a second numeric path (see test_numeric_paths.py)."""

from test_numeric_paths import NOTEBOOKS, PARTS, run_under_second_path


def test_notebooks_under_a_second_numeric_path_part2():
    run_under_second_path(NOTEBOOKS[1::PARTS])
