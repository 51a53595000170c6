"""Rasterise two-ball billiards states into small greyscale images."""

import numpy as np

# Frames rendered per pass: the (chunk, size, size) float32 working buffers stay a few MB, small
# enough to remain cache-friendly and far below the memory budget whatever the dataset size.
_CHUNK = 2048


def render(coords: np.ndarray, size: int = 28, radius: float = 0.1) -> np.ndarray:
    """Draw both balls of each state as anti-aliased discs.

    ``coords``: ``(..., 4)`` ball centres ``[x1, y1, x2, y2]`` in the unit box. Returns float32
    ``(..., size * size)`` row-major images in [0, 1], row 0 being the top of the table (y = 1).
    A pixel's value is ``clip(radius_px + 0.5 - distance_px, 0, 1)`` for the nearer ball, i.e. the
    two discs combined with max.
    """
    coords = np.asarray(coords)
    lead = coords.shape[:-1]
    flat = coords.reshape(-1, 4).astype(np.float32)
    # Ball centres in pixel units, measured from the centre of pixel (0, 0).
    col = flat[:, 0::2] * size - 0.5
    row = (1.0 - flat[:, 1::2]) * size - 0.5
    grid = np.arange(size, dtype=np.float32)
    edge = np.float32(radius * size + 0.5)

    out = np.empty((flat.shape[0], size, size), dtype=np.float32)
    other = np.empty((min(_CHUNK, flat.shape[0]), size, size), dtype=np.float32)
    for start in range(0, flat.shape[0], _CHUNK):
        stop = min(start + _CHUNK, flat.shape[0])
        dst, tmp = out[start:stop], other[: stop - start]
        dx2 = np.square(grid - col[start:stop, :, None])  # (chunk, ball, size)
        dy2 = np.square(grid - row[start:stop, :, None])
        # Coverage falls monotonically with distance, so the max over balls is the coverage of the
        # nearer centre: take the min squared distance and do the sqrt/clip once.
        np.add(dy2[:, 0, :, None], dx2[:, 0, None, :], out=dst)
        np.add(dy2[:, 1, :, None], dx2[:, 1, None, :], out=tmp)
        np.minimum(dst, tmp, out=dst)
        np.sqrt(dst, out=dst)
        np.subtract(edge, dst, out=dst)
        np.clip(dst, 0.0, 1.0, out=dst)
    return out.reshape(*lead, size * size)
