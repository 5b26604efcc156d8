"""One list of the errors shown as one line (``napari_tsimcne.errors``), used by the
command line and the widget's controller; any other exception keeps its traceback."""

import numpy as np
import pytest

from napari_tsimcne import cli
from napari_tsimcne.data import as_image_stack
from napari_tsimcne.errors import USER_ERRORS, ImageTypeError
from napari_tsimcne.plugin.controller import capture


def _raising(error):
    def run(*args, **kwargs):
        raise error
    return run


def test_the_list_leaves_out_the_errors_torch_raises_for_its_own_failures():
    assert RuntimeError not in USER_ERRORS and TypeError not in USER_ERRORS
    assert not issubclass(RuntimeError, USER_ERRORS) and not issubclass(TypeError, USER_ERRORS)


def test_images_of_a_wrong_type_are_a_type_error_on_the_list():
    with pytest.raises(ImageTypeError, match="images must be bool, integer or float") as caught:
        as_image_stack(np.zeros((4, 16, 16), complex))
    assert isinstance(caught.value, TypeError) and isinstance(caught.value, USER_ERRORS)


@pytest.mark.parametrize("error", [ValueError("bad value"), FileNotFoundError("no file"),
                                   ImageTypeError("bad type"), FloatingPointError("diverged")])
def test_command_line_and_widget_show_a_listed_error_as_its_message(monkeypatch, capsys, error):
    monkeypatch.setattr(cli, "run_info", _raising(error))
    assert cli.main(["info", "model.pt"]) == 2
    assert capsys.readouterr().err.strip() == f"napari-tsimcne: error: {error}"
    assert capture(_raising(error)).error == str(error)


@pytest.mark.parametrize("error", [RuntimeError("inside torch"), TypeError("a bug")])
def test_command_line_and_widget_let_a_bug_keep_its_traceback(monkeypatch, error):
    monkeypatch.setattr(cli, "run_info", _raising(error))
    with pytest.raises(type(error)):
        cli.main(["info", "model.pt"])
    with pytest.raises(type(error)):
        capture(_raising(error))
