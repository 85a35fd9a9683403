"""The benchmark helpers behind `sharpkd bench` and benchmarks/speed.py."""

import os

from PIL import Image

from sharpkd import bench


def test_write_photo_makes_the_test_photo_once(tmp_path):
    path = bench.write_photo(tmp_path / "p.jpg", 0.1)
    with Image.open(path) as im:
        assert im.format == "JPEG" and abs(im.width * im.height / 1e6 - 0.1) < 0.01 and im.width > im.height
    os.utime(path, (1, 1))
    assert bench.write_photo(path, 0.1) == path and path.stat().st_mtime == 1  # reused, not remade


def test_run_enhance_times_the_whole_process(tmp_path):
    photo = bench.write_photo(tmp_path / "p.png", 0.05)
    run = bench.run_enhance([photo], tmp_path / "out", ["--model", "fast", "--tile", "64"])
    out = tmp_path / "out" / "p.png"
    assert out.exists() and run.seconds > 0 and abs(run.megapixels - 0.05) < 0.01
    assert 50 < run.peak_mb < 4000  # torch alone is about 300 MB


def test_bench_command_prints_the_table(tmp_path):
    from click.testing import CliRunner

    from sharpkd.cli import main

    r = CliRunner().invoke(main, ["bench", "--model", "fast", "--megapixels", "0.05", "--work", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert "fast" in r.output and "0.05 MP PNG" in r.output and (tmp_path / "photo-0.05mp.png").exists()
