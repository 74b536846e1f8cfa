"""A model trained with other versions of the libraries that decide its scores says so, in one line."""

from tiercast.pipeline.jobs.score import library_mismatch


def test_changed_libraries_are_named_with_both_versions():
    trained = {"lightgbm": "4.6.0", "pandas": "3.1.1", "scipy": "1.17.0"}
    here = {"lightgbm": "4.7.0", "pandas": "3.1.1"}
    assert library_mismatch(trained, here, "tiercast version 3") == (
        "tiercast version 3 was trained with lightgbm 4.6.0 (here 4.7.0), scipy 1.17.0 (here not installed): its "
        "scores may differ slightly from the training run's (retrain in this environment, or install the training "
        "run's versions, to reproduce them)"
    )


def test_same_versions_or_nothing_recorded_give_no_note():
    here = {"lightgbm": "4.7.0", "pandas": "3.1.1"}
    assert library_mismatch({"lightgbm": "4.7.0"}, here, "m") is None
    assert library_mismatch({}, here, "m") is None  # a model that recorded no versions
