"""Tiling is seam-free: the production path (``inference.enhance_pixels``) tiled equals the whole-image
pass. 16-bit pixels, so that a difference of 1e-4 of the range (6 levels) would show."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from sharpkd.inference import block_for, enhance_pixels
from sharpkd.models.student import Student, StudentConfig
from sharpkd.models.teacher import Teacher, TeacherConfig
from sharpkd.pretrained import describe
from sharpkd.tiling import plan


def trained_like(model):
    """Random weights everywhere (the tail starts at zero, which would hide context errors)."""
    torch.manual_seed(0)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.2)
    return model.eval()


MODELS = [trained_like(Student(StudentConfig(channels=16, blocks=3))), trained_like(Teacher(TeacherConfig(channels=16, blocks=2)))]


def photo16(size):
    return np.random.default_rng(0).integers(0, 65536, (*size, 3), dtype=np.uint16)


@pytest.mark.parametrize("model", MODELS, ids=["student", "teacher"])
@pytest.mark.parametrize("size", [(150, 203), (37, 61), (1, 90), (90, 1), (130, 7), (64, 64)])
@pytest.mark.parametrize("block", [(1, 1), (4, 2), (2, 3)])
def test_tiled_equals_whole(model, size, block):
    loaded = describe(model, "m")
    x = photo16(size)
    whole, _ = enhance_pixels(loaded, x, tile=0)
    tiled, _ = enhance_pixels(loaded, x, tile=16, block=block)
    assert whole.shape == x.shape and np.abs(whole.astype(int) - x).max() > 100  # the model changed it
    assert np.abs(whole.astype(int) - tiled).max() <= 6  # 1e-4 of the range: float rounding only


@pytest.mark.parametrize("block", [(1, 1), (4, 2)])
def test_too_small_a_margin_shows_seams(block):
    """The check above can fail: with half the context the tiles (or blocks) disagree with the whole image."""
    loaded = describe(MODELS[0], "m")
    x = photo16((150, 203))
    whole, _ = enhance_pixels(loaded, x, tile=0)
    tiled, _ = enhance_pixels(replace(loaded, context=loaded.context // 2), x, tile=16, block=block)
    assert np.abs(whole.astype(int) - tiled).max() > 50


def test_context_bound_is_safe():
    """An impulse moves no output pixel further than the model's reported context."""
    for model in MODELS:
        x = torch.rand(1, 3, 160, 160)
        y = x.clone()
        y[..., 80, 80] += 1.0
        with torch.no_grad():
            diff = (model(x) - model(y)).abs().sum(1)[0]
        rows, cols = torch.nonzero(diff > 0, as_tuple=True)
        assert (rows - 80).abs().max() <= model.context and (cols - 80).abs().max() <= model.context


def test_plan_covers_every_pixel_once():
    tiles = plan(200, 136, 64, 20, 4)
    cover = torch.zeros(200, 136)
    for t in tiles:
        cover[t.y0 : t.y1, t.x0 : t.x1] += 1
        assert t.ry0 % 4 == 0 and t.rx0 % 4 == 0 and t.ry0 <= t.y0 and t.ry1 >= t.y1
    assert torch.all(cover == 1)
    with pytest.raises(ValueError):
        plan(201, 136, 64, 20, 4)


def test_blocks_are_adjacent_tiles_sharing_one_margin():
    """A block's core is a union of whole tiles of the plain plan (fewer at the right and bottom edges), its
    region that core grown by one margin: the blocks cover every pixel once, as the tiles do."""
    tiles = plan(200, 136, 32, 20, 4)
    blocks = plan(200, 136, 32, 20, 4, across=3, down=2)
    assert len(blocks) == 4 * 2  # 7 tile rows in 4 pairs, 5 tile columns in 2 triples
    cover = torch.zeros(200, 136)
    for b in blocks:
        cover[b.y0 : b.y1, b.x0 : b.x1] += 1
        inside = [t for t in tiles if b.y0 <= t.y0 and t.y1 <= b.y1 and b.x0 <= t.x0 and t.x1 <= b.x1]
        assert sum((t.y1 - t.y0) * (t.x1 - t.x0) for t in inside) == (b.y1 - b.y0) * (b.x1 - b.x0)
        assert len(inside) <= 6
        assert (b.ry0, b.ry1, b.rx0, b.rx1) == (max(b.y0 - 20, 0), min(b.y1 + 20, 200), max(b.x0 - 20, 0), min(b.x1 + 20, 136))
    assert torch.all(cover == 1)


def test_small_tiles_are_grouped_into_blocks_and_large_ones_run_alone():
    """Blocks reach 512 px a side; a tile that large or larger is computed on its own, so that --tile still
    bounds the memory of one pass; the whole image (tile 0) is one region anyway."""
    assert block_for(128) == (4, 4) and block_for(64) == (8, 8) and block_for(200) == (2, 2)
    assert block_for(512) == (1, 1) and block_for(1024) == (1, 1) and block_for(0) == (1, 1)
    widest = max(b.rx1 - b.rx0 for b in plan(2048, 2048, 1024, 28, 4, *block_for(1024)))
    assert widest == 1024 + 28
