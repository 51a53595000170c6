"""Time simulating 10,000 Billiards2D trajectories; prints one JSON line."""

import json
import time

from pcnode.tasks import simulate

TRAJECTORIES = 10_000

start = time.perf_counter()
simulate("billiards2d", TRAJECTORIES, seed=0)
seconds = time.perf_counter() - start
print(json.dumps({"task": "billiards2d", "trajectories": TRAJECTORIES, "seconds": round(seconds, 3)}))
