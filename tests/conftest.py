import numpy as np
import pytest
import skimage.data


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch):
    """Every test gets its own data dir, so a user's installed model or data sets never leak in."""
    home = tmp_path_factory.mktemp("sharpkd-home")
    monkeypatch.setenv("SHARPKD_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def photo():
    """A real photo, 96x128 crop of scikit-image's coffee (uint8 RGB)."""
    return np.ascontiguousarray(skimage.data.coffee()[100:196, 200:328])
