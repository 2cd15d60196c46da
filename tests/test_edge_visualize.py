import numpy as np
import pytest

from edge import visualize

COLORS = ((255, 0, 0), (0, 255, 0), (0, 0, 255))  # RGB, as the spec stores them
LABELS = ("red", "green", "blue")


def test_colorize_maps_rgb_palette_to_bgr_and_blanks_ignored():
    class_map = np.array([[0, 1], [2, 255]], np.uint8)
    colored = visualize.colorize(class_map, COLORS, ignore_label=255)
    assert colored[0, 0].tolist() == [0, 0, 255]  # red in BGR
    assert colored[0, 1].tolist() == [0, 255, 0]
    assert colored[1, 0].tolist() == [255, 0, 0]
    assert colored[1, 1].tolist() == [0, 0, 0]
    wide = visualize.colorize(np.array([[2, 7]], np.int32), COLORS)
    assert wide[0, 0].tolist() == [255, 0, 0] and wide[0, 1].tolist() == [0, 0, 0]  # unknown id -> black


def test_overlay_blends_with_alpha_and_is_pure():
    frame = np.full((4, 6, 3), 100, np.uint8)
    class_map = np.zeros((4, 6), np.uint8)
    class_map[:, 3:] = 2
    class_map[0, 0] = 255
    before = frame.copy()
    out = visualize.overlay(frame, class_map, COLORS, alpha=0.25, untinted=(255,))
    np.testing.assert_array_equal(frame, before)
    # 0.75 * 100 + 0.25 * 255 = 138.75; other channels 75.
    assert out[1, 0].tolist() == [75, 75, 139]
    assert out[1, 5].tolist() == [139, 75, 75]
    assert out[0, 0].tolist() == [100, 100, 100]  # ignored pixel untouched
    np.testing.assert_array_equal(visualize.overlay(frame, class_map, COLORS, alpha=0.0), frame)
    with pytest.raises(ValueError, match="alpha"):
        visualize.overlay(frame, class_map, COLORS, alpha=1.5)
    with pytest.raises(ValueError, match="does not match"):
        visualize.overlay(frame, class_map[..., None], COLORS)


@pytest.mark.parametrize("dtype", [np.uint8, np.int32])
def test_the_overlay_tints_each_class_through_the_table_and_leaves_the_background_as_it_is(dtype):
    labels = ("background", "person", "cat")
    colors = ((0, 0, 0), (192, 128, 128), (64, 0, 0))  # VOC's background, person, cat
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)  # more pixels than LUT_PIXELS: OpenCV's tables
    class_map = rng.integers(0, 3, (240, 320)).astype(dtype)
    class_map[:10, :10] = 255
    untinted = visualize.untinted_classes(labels, 255)
    assert untinted == (0, 255) and visualize.untinted_classes(("_Background_", "x"), None) == (0,)
    assert visualize.untinted_classes(LABELS, 255) == (255,)  # no class named background: every class is tinted
    out = visualize.overlay(frame, class_map, colors, alpha=0.6, untinted=untinted)
    table = np.array([c[::-1] for c in colors] + [(0, 0, 0)] * 253, np.float64)
    expected = 0.4 * frame + 0.6 * table[np.minimum(class_map, 255)]
    kept = np.isin(class_map, untinted)
    expected[kept] = frame[kept]
    assert kept.any() and (~kept).any()
    assert np.abs(out.astype(np.float64) - expected).max() <= 1  # OpenCV rounds the blend
    np.testing.assert_array_equal(out[kept], frame[kept])  # the photo keeps its brightness there
    with pytest.raises(ValueError, match="does not match"):
        visualize.overlay(frame, class_map[:100], colors)


def test_render_leaves_untinted_classes_out_of_the_legend():
    labels = ("background", "person", "cat")
    frame = np.full((120, 320, 3), 90, np.uint8)
    class_map = np.zeros((120, 320), np.uint8)
    class_map[60:, :100] = 1
    out = visualize.render(frame, class_map, labels=labels, colors=((0, 0, 0), (192, 128, 128), (64, 0, 0)),
                           alpha=0.5, ignore_label=255)
    rows = visualize.legend_layout(out.shape, labels, [1], scale=0.4)
    (top, left, bottom, right) = rows[0][1]
    assert out[(top + bottom) // 2, (left + right) // 2].tolist() == [128, 128, 192]  # person's swatch, the only one
    assert out[top - 4 + (bottom - top) + 8 + 4, left].tolist() == [90, 90, 90]  # no second row (background)
    assert out[100, 200].tolist() == [90, 90, 90] and out[100, 50].tolist() == [109, 109, 141]


def test_classes_present_skips_ignore_and_out_of_range():
    class_map = np.array([[0, 2, 2], [255, 9, 0]], np.uint8)
    assert visualize.classes_present(class_map, 3, ignore_label=255) == [0, 2]
    assert visualize.classes_present(class_map.astype(np.int32), 3, ignore_label=255) == [0, 2]


def test_legend_draws_a_swatch_per_present_class_at_top_right():
    image = np.full((120, 320, 3), 200, np.uint8)
    out = visualize.draw_legend(image, [0, 2], LABELS, COLORS)
    np.testing.assert_array_equal(image, np.full((120, 320, 3), 200, np.uint8))  # pure
    rows = visualize.legend_layout(out.shape, LABELS, [0, 2], scale=0.4)
    assert [r[0] for r in rows] == [0, 2]
    for class_id, (top, left, bottom, right), _ in rows:
        assert left > 320 // 2  # right-hand side
        centre = out[(top + bottom) // 2, (left + right) // 2].tolist()
        assert centre == list(COLORS[class_id][::-1])
    # No swatch for green, which is absent; the panel behind the text is darkened.
    assert not np.all(out == (0, 255, 0), axis=-1).any()
    top, left = rows[0][1][0], rows[0][1][1]
    assert out[top - 2, left - 2].tolist() == [80, 80, 80]
    # Text is drawn in white to the right of the swatch.
    text_x = rows[0][2][0]
    assert (out[rows[0][1][0]:rows[0][1][2], text_x:] > 230).all(axis=-1).any()
    np.testing.assert_array_equal(visualize.draw_legend(image, [], LABELS, COLORS), image)


def test_stats_panel_text_and_pixels():
    lines = visualize.stats_lines(fps=29.96, stages_ms={"invoke": 12.34, "capture": 1.0, "render": 2.0})
    assert lines == ["FPS 30.0", "capture 1.0 ms", "invoke 12.3 ms", "render 2.0 ms"]
    image = np.full((200, 320, 3), 200, np.uint8)
    out = visualize.draw_stats(image, fps=10, stages_ms={"invoke": 5.0})
    assert out[1, 1].tolist() == [80, 80, 80]  # darkened panel at the top-left
    assert (out[:40, :120] == 255).all(axis=-1).any()  # white text
    assert out[190, 310].tolist() == [200, 200, 200]  # elsewhere untouched
    np.testing.assert_array_equal(image, np.full((200, 320, 3), 200, np.uint8))


def test_render_combines_overlay_legend_and_stats():
    frame = np.zeros((120, 320, 3), np.uint8)
    class_map = np.zeros((120, 320), np.uint8)
    class_map[:, 160:] = 1
    out = visualize.render(frame, class_map, labels=LABELS, colors=COLORS, alpha=1.0, ignore_label=255,
                           fps=5.0, stages_ms={"invoke": 1.0})
    assert out[100, 50].tolist() == [0, 0, 255] and out[100, 250].tolist() == [0, 255, 0]
    rows = visualize.legend_layout(out.shape, LABELS, [0, 1], scale=0.4)
    assert [r[0] for r in rows] == [0, 1]
    no_stats = visualize.render(frame, class_map, labels=LABELS, colors=COLORS, alpha=1.0, ignore_label=255)
    assert no_stats[1, 1].tolist() == [0, 0, 255]  # no panel without fps


@pytest.mark.parametrize("size", [(480, 640), (64, 64)])
def test_a_stills_legend_scales_with_the_image_or_sits_beside_a_small_one(size):
    labels = ("background", "circle", "square")
    image = np.full((*size, 3), 200, np.uint8)
    out = visualize.legend_with_image(image, [0, 2], labels, COLORS)
    np.testing.assert_array_equal(image, np.full((*size, 3), 200, np.uint8))  # pure
    if size == (480, 640):  # on the image, at the top-right, in the font of a 640x480 frame
        assert out.shape == image.shape and visualize.legend_scale(image.shape) == 0.5
        rows = visualize.legend_layout(out.shape, labels, [0, 2], scale=0.5)
        assert rows[0][1][1] > 640 * 2 // 3
        assert visualize.legend_scale((1080, 1920)) > 1.0  # and larger on a larger picture
    else:  # beside it: the image untouched on the left, the whole legend on a panel to its right
        assert out.shape[0] >= 64 and out.shape[1] > 64 + visualize._text_size("background", visualize.FONT, 0.4, 1)[0][0]
        np.testing.assert_array_equal(out[:64, :64], image)
        rows = visualize.legend_layout((out.shape[0], out.shape[1] - 64), labels, [0, 2], scale=0.4)
    for class_id, (top, left, bottom, right), _ in rows:
        offset = 0 if size == (480, 640) else 64
        centre = out[(top + bottom) // 2, offset + (left + right) // 2].tolist()
        assert centre == list(COLORS[class_id][::-1])
