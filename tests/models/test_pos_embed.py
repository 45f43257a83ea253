"""Position tables for other grids (middle-cls aware, official quirk) and offset sincos."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gigavim.models import VisionMamba
from gigavim.models.pos_embed import convert_pos_table, resample_pos_embed, sincos_2d


def _table(h: int, w: int, dim: int = 8) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(1, h * w + 1, dim)


def _bicubic(grid: torch.Tensor, old: tuple[int, int], new: tuple[int, int]) -> torch.Tensor:
    img = grid.reshape(1, *old, -1).permute(0, 3, 1, 2)
    out = F.interpolate(img, size=new, mode="bicubic", align_corners=False)
    return out.permute(0, 2, 3, 1).reshape(1, new[0] * new[1], -1)


def test_unchanged_grid_is_identity():
    pos = _table(4, 4)
    assert resample_pos_embed(pos, (4, 4), (4, 4), "middle") is pos
    assert resample_pos_embed(pos, (4, 4), (4, 4), "middle", official_quirk=True) is pos


def test_middle_cls_embedding_is_kept_and_the_grid_resampled():
    pos = _table(4, 4)  # cls at 16 // 2 = 8
    out = resample_pos_embed(pos, (4, 4), (6, 5), "middle")
    assert out.shape == (1, 31, 8)
    torch.testing.assert_close(out[:, 15], pos[:, 8])  # new cls slot: 30 // 2
    grid = torch.cat([pos[:, :8], pos[:, 9:]], dim=1)
    expected = _bicubic(grid, (4, 4), (6, 5))
    torch.testing.assert_close(torch.cat([out[:, :15], out[:, 16:]], dim=1), expected)


def test_official_quirk_shifts_positions_by_one():
    pos = _table(4, 4)
    quirk = resample_pos_embed(pos, (4, 4), (6, 6), "middle", official_quirk=True)
    torch.testing.assert_close(quirk[:, :1], pos[:, :1])
    torch.testing.assert_close(quirk[:, 1:], _bicubic(pos[:, 1:], (4, 4), (6, 6)))
    assert not torch.allclose(quirk, resample_pos_embed(pos, (4, 4), (6, 6), "middle"))


def test_layout_conversion_drops_or_adds_the_class_slot():
    pos = _table(4, 4)
    no_cls = convert_pos_table(pos, (4, 4), "middle", (4, 4), "none")
    torch.testing.assert_close(no_cls, torch.cat([pos[:, :8], pos[:, 9:]], dim=1))
    back = convert_pos_table(no_cls, (4, 4), "none", (4, 4), "first")
    assert torch.equal(back[:, 0], torch.zeros(1, 8)) and torch.equal(back[:, 1:], no_cls)
    with pytest.raises(ValueError, match="17 entries"):
        convert_pos_table(pos, (4, 4), "none", (4, 4), "none")


def test_sincos_tile_at_offset_equals_crop_of_whole_grid():
    whole = sincos_2d((20, 30), 16).reshape(20, 30, 16)
    tile = sincos_2d((5, 7), 16, offset_yx=(11, 3)).reshape(5, 7, 16)
    torch.testing.assert_close(tile, whole[11:16, 3:10])
    assert len({tuple(v) for v in whole.reshape(-1, 16).round(decimals=5).tolist()}) == 600
    with pytest.raises(ValueError, match="divisible by 4"):
        sincos_2d((2, 2), 6)


@pytest.mark.parametrize("quirk", [False, True])
def test_model_learned_table_is_resampled_to_the_input_grid(quirk):
    model = VisionMamba(img_size=32, patch_size=8, stride=8, depth=1, embed_dim=8, num_classes=0,
                        official_quirk=quirk)
    with torch.no_grad():
        model.patch_embed.proj.weight.zero_()
        model.patch_embed.proj.bias.zero_()
        tokens, grid = model.embed(torch.randn(1, 3, 48, 40))
    assert grid == (6, 5)
    expected = resample_pos_embed(model.pos_embed, (4, 4), (6, 5), "middle", quirk).clone()
    expected[:, 15] += model.cls_token[:, 0]
    torch.testing.assert_close(tokens, expected)


def test_sincos_model_tile_tokens_match_the_whole_image():
    """What streaming needs: a tile embedded at its offset gets the whole image's positions."""
    torch.manual_seed(0)
    model = VisionMamba(img_size=32, patch_size=8, stride=8, depth=1, embed_dim=16, num_classes=0,
                        cls_token="none", pos_embed_mode="sincos")
    image = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        whole, grid = model.embed(image)
        tile, _ = model.embed(image[..., 16:48, 40:80], pos_offset=(2, 5))
    whole = whole.reshape(1, *grid, 16)
    torch.testing.assert_close(tile.reshape(1, 4, 5, 16), whole[:, 2:6, 5:10])
