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


@pytest.fixture
def two_photos(tmp_path):
    """A folder of two small HR photos, just above the 128 px training minimum (a.png, b.png)."""
    from PIL import Image

    src = tmp_path / "hr"
    src.mkdir()
    hr = skimage.data.coffee()
    Image.fromarray(np.ascontiguousarray(hr[:136, :160])).save(src / "a.png")
    Image.fromarray(np.ascontiguousarray(hr[200:336, 300:460])).save(src / "b.png")
    return src
