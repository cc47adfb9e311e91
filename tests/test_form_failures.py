"""When the request cannot be taken: a database that cannot be written, or more text than the
form can take. The visitor keeps every typed word and is given the office phone number; never a 500.
"""

import gc
import os

import pytest

from helpers import (
    PHONE_LINK,
    TRICKY_VALUES,
    assert_is_form_region_fragment,
    assert_shown_in_form,
    break_database,
    stored_inquiries,
)


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "plain"])
def test_database_that_cannot_be_written_keeps_the_words_and_gives_the_phone_number(app, visitor, htmx):
    data = visitor.form(**TRICKY_VALUES)
    data["phone"] = "(203) 555-0147"
    break_database(app)
    response = visitor.post(data, htmx=htmx)
    assert response.status_code == 503
    assert PHONE_LINK in response.text
    assert "could not save your request" in response.text
    assert_shown_in_form(response.text, data)
    if htmx:
        assert_is_form_region_fragment(response.text)
    else:
        assert "<html" in response.text


def test_database_in_an_impossible_place_gives_503_not_500(app, visitor):
    data = visitor.form()
    app.config["DATABASE"] = "/proc/rsct-nowhere.sqlite3"
    response = visitor.post(data, htmx=True)
    assert response.status_code == 503
    assert PHONE_LINK in response.text
    assert_shown_in_form(response.text, data)


def test_database_below_a_file_gives_503_not_500(app, visitor, tmp_path):
    data = visitor.form()
    (tmp_path / "not-a-folder").write_text("")
    app.config["DATABASE"] = str(tmp_path / "not-a-folder" / "rsct.sqlite3")
    response = visitor.post(data)
    assert response.status_code == 503
    assert PHONE_LINK in response.text


def test_form_sent_after_the_database_recovers_is_stored(app, visitor):
    data = visitor.form()
    path = app.config["DATABASE"]
    app.config["DATABASE"] = "/proc/rsct-nowhere.sqlite3"
    assert visitor.post(data, htmx=True).status_code == 503
    app.config["DATABASE"] = path
    assert visitor.post(data, htmx=True).status_code == 200
    assert len(stored_inquiries(app)) == 1


def _corrupt_database(app) -> None:
    path = app.config["DATABASE"]
    for suffix in ("-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    with open(path, "wb") as handle:
        handle.write(b"not a database " * 100)


def test_database_file_that_is_not_a_database_gives_503_not_500(app, visitor):
    data = visitor.form()
    _corrupt_database(app)
    response = visitor.post(data, htmx=True)
    assert response.status_code == 503
    assert PHONE_LINK in response.text
    assert_shown_in_form(response.text, data)
    gc.collect()  # see the next test: the failed connection is only closed by the garbage collector


def _open_files_under(prefix: str) -> list[str]:
    paths = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            paths.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            pass
    return [path for path in paths if path.startswith(prefix)]


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to list open files")
def test_failed_database_connection_is_closed_at_once(app, visitor):
    data = visitor.form()
    _corrupt_database(app)
    gc.collect()
    gc.disable()  # only reference counting: what is not closed explicitly stays open
    try:
        response = visitor.post(data, htmx=True)
        assert response.status_code == 503
        del response
        assert _open_files_under(app.config["DATABASE"]) == []
    finally:
        gc.enable()
        gc.collect()


def test_too_much_text_from_htmx_keeps_the_form_and_shows_a_short_notice(app, visitor):
    response = visitor.submit(message="x" * 40_000, htmx=True)
    assert response.status_code == 413
    assert response.headers["HX-Retarget"] == "#form-status"
    assert response.headers["HX-Reswap"] == "innerHTML"
    assert PHONE_LINK in response.text
    assert "more text than the form can take" in response.text
    assert "<html" not in response.text and "<form" not in response.text
    assert stored_inquiries(app) == []


def test_too_much_text_from_a_plain_browser_gives_a_page_with_the_phone_number(app, visitor):
    response = visitor.submit(message="x" * 40_000)
    assert response.status_code == 413
    assert "<html" in response.text
    assert PHONE_LINK in response.text
    assert "HX-Retarget" not in response.headers
    assert stored_inquiries(app) == []


def test_body_just_under_the_limit_is_read(app, visitor):
    data = visitor.form(message="x" * 1001)  # too long for the form, not for the server
    response = visitor.post(data, htmx=True)
    assert response.status_code == 422
