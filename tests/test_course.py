"""The course order is declared once (course/course.yml): the README's reading order is generated from it."""

from pathlib import Path

import pytest

from panns_core.study.course import README_END, README_START, load_course, readme_block, readme_with_course

REPO = Path(__file__).resolve().parent.parent


def test_readme_reading_order_is_the_course_file():
    text = (REPO / "README.md").read_text()
    assert readme_with_course(text) == text, (
        "README.md's reading order differs from course/course.yml: run `python -m panns_core.study.course readme`")
    block = text[text.index(README_START):text.index(README_END)]
    positions = [block.index(f"notebooks/{stem}.ipynb") for stem in load_course().order]
    assert positions == sorted(positions)


def test_course_lists_every_lesson_once_and_starts_with_the_data():
    course = load_course()
    assert course.order[0] == "00_environment_and_data" and len(set(course.order)) == len(course.order)
    assert set(course.with_exercises) <= set(course.order)
    assert course.order.index("05_sampler_and_mixup") < course.order.index("03_train_system") < \
        course.order.index("04_evaluate_system")


def test_a_malformed_course_file_is_named(tmp_path):
    bad = tmp_path / "course.yml"
    bad.write_text("title: x\nparts:\n  - caption: Data\n    notebooks: [99_missing]\n")
    with pytest.raises(ValueError, match=r"course\.yml: .*99_missing"):
        load_course(bad)
    bad.write_text("title: x\n")
    with pytest.raises(ValueError, match="needs 'title' and 'parts'"):
        load_course(bad)


def test_readme_block_names_every_notebook_by_its_title():
    block = readme_block()
    assert "[03 · The training loop](notebooks/03_train_system.ipynb)" in block
