import numpy as np
import pytest

from edge.segmenter import letterbox_geometry
from edge.upsample import Upsample, bilinear, decide, exact, frame_grid, nearest

ALIGNMENTS = ("half_pixel", "legacy", "stride")
# (frame size, input size, stride): upsampling, a frame smaller than the input, a wide frame.
CASES = [((48, 64), (26, 30), 4), ((20, 14), (26, 30), 4), ((60, 200), (33, 33), 8)]


def coordinates(frame, top, content, size_in, size_out, alignment, stride):
    """The contract, written out: frame pixel centre -> input -> output coordinate (float64)."""
    y_in = top + (np.arange(frame) + 0.5) * content / frame - 0.5
    return {"half_pixel": (y_in + 0.5) * size_out / size_in - 0.5, "legacy": y_in * size_out / size_in,
            "stride": (y_in + 0.5) / stride - 0.5}[alignment]


def reference(values, frame_size, box, input_size, alignment, stride):
    """Bilinear with clamped borders, one axis at a time with np.interp, in float64."""
    top, left, nh, nw = box
    oh, ow = values.shape[:2]
    ys = coordinates(frame_size[0], top, nh, input_size[0], oh, alignment, stride)
    xs = coordinates(frame_size[1], left, nw, input_size[1], ow, alignment, stride)
    values = values.astype(np.float64)
    cols = np.stack([[np.interp(xs, np.arange(ow), row[:, k]) for row in values] for k in range(values.shape[2])], -1)
    return np.stack([[np.interp(ys, np.arange(oh), cols[:, x, k]) for x in range(len(xs))]
                     for k in range(values.shape[2])], -1).transpose(1, 0, 2)


def grids(frame_size, input_size, stride, alignment):
    output = tuple(-(-s // stride) for s in input_size)
    for mode in ("stretch", "letterbox"):
        geometry = letterbox_geometry(frame_size, input_size, mode)
        yield geometry, output, frame_grid(frame_size, geometry.box, input_size=input_size, output_size=output,
                                           alignment=alignment, stride=stride)


@pytest.mark.parametrize("alignment", ALIGNMENTS)
@pytest.mark.parametrize("frame_size,input_size,stride", CASES)
def test_bilinear_follows_the_alignment_contract(frame_size, input_size, stride, alignment):
    rng = np.random.default_rng(0)
    for geometry, output, grid in grids(frame_size, input_size, stride, alignment):
        values = rng.normal(size=(*output, 3)).astype(np.float32)
        got = bilinear(grid, values)
        assert got.shape == (*frame_size, 3)
        np.testing.assert_allclose(got, reference(values, frame_size, geometry.box, input_size, alignment, stride),
                                   atol=1e-5)


def test_the_three_alignments_place_the_map_differently():
    rows = {a: frame_grid((48, 64), (0, 0, 26, 30), input_size=(26, 30), output_size=(7, 8), alignment=a,
                          stride=4).rows for a in ALIGNMENTS}
    for a in ALIGNMENTS:
        for b in ALIGNMENTS:
            if a < b:
                assert not np.allclose(rows[a].low + rows[a].weight, rows[b].low + rows[b].weight), (a, b)


@pytest.mark.parametrize("alignment", ALIGNMENTS)
@pytest.mark.parametrize("frame_size,input_size,stride", CASES)
def test_exact_equals_the_argmax_of_the_bilinear_scores(frame_size, input_size, stride, alignment):
    rng = np.random.default_rng(1)
    for _, output, grid in grids(frame_size, input_size, stride, alignment):
        candidates = [rng.integers(0, 256, (*output, 21), dtype=np.uint8),  # noise: boundaries everywhere
                      rng.integers(0, 3, (*output, 5), dtype=np.uint8),  # few levels: ties everywhere
                      rng.integers(-128, 128, (*output, 2), dtype=np.int8),
                      rng.normal(size=(*output, 4)).astype(np.float32)]
        blobs = np.zeros((*output, 6), np.float32)  # smooth regions, as a trained model gives
        blobs[..., 0] = 1.0
        blobs[1:4, 2:5, 3] = 2.0
        candidates.append(blobs + rng.normal(scale=0.3, size=blobs.shape).astype(np.float32))
        for values in candidates:
            ids = decide(values).astype(np.uint8)
            np.testing.assert_array_equal(exact(grid, values, ids), decide(bilinear(grid, values)))
        one = rng.integers(0, 256, (*output, 1), dtype=np.uint8)  # one channel: a threshold, not an argmax
        np.testing.assert_array_equal(exact(grid, one, decide(one, 127.5).astype(np.uint8), 127.5),
                                      decide(bilinear(grid, one), 127.5))


def test_nearest_takes_the_closest_output_pixel():
    grid = frame_grid((48, 64), (0, 0, 26, 30), input_size=(26, 30), output_size=(7, 8), alignment="stride", stride=4)
    ids = np.arange(56, dtype=np.uint8).reshape(7, 8)
    ys = np.clip(np.rint(coordinates(48, 0, 26, 26, 7, "stride", 4)), 0, 6).astype(int)
    xs = np.clip(np.rint(coordinates(64, 0, 30, 30, 8, "stride", 4)), 0, 7).astype(int)
    np.testing.assert_array_equal(nearest(grid, ids), ids[ys][:, xs])
    colors = np.random.default_rng(0).integers(0, 256, (7, 8, 3), dtype=np.uint8)
    np.testing.assert_array_equal(nearest(grid, colors), colors[ys][:, xs])


def test_upsample_choices():
    assert Upsample.parse("nearest") is Upsample.NEAREST
    with pytest.raises(ValueError, match=r"upsample: unknown value 'cubic'; valid choices are \['exact', 'nearest'\]"):
        Upsample.parse("cubic")
