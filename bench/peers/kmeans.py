"""scikit-learn KMeans on the same matrix edlake segments: python kmeans.py MATRIX.json K
Prints one JSON line: {"rows": n, "seconds": s} (fit only, k-means++ start, one init, Lloyd)."""
import json
import sys
import time

import numpy as np
from sklearn.cluster import KMeans

x = np.array(json.load(open(sys.argv[1])), dtype=np.float64)
k = int(sys.argv[2])
t0 = time.perf_counter()
KMeans(n_clusters=k, init="k-means++", n_init=1, algorithm="lloyd", random_state=42, max_iter=100).fit(x)
print(json.dumps({"rows": len(x), "seconds": time.perf_counter() - t0}))
