"""Time rendering 10,000 Billiards2D trajectories of 45 frames to 28x28 images; prints one JSON line."""

import json
import time

from pcnode.render import render
from pcnode.tasks import simulate

TRAJECTORIES = 10_000

coords, _ = simulate("billiards2d", TRAJECTORIES, seed=0)
start = time.perf_counter()
render(coords)
seconds = time.perf_counter() - start
print(json.dumps({
    "trajectories": TRAJECTORIES,
    "seconds": round(seconds, 3),
    "ms_per_trajectory": round(1000.0 * seconds / TRAJECTORIES, 4),
}))
