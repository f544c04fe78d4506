"""The 2×3 image with two superpixels that the engine tests compute by hand.

Pixel softmax vectors (class 0, class 1), superpixel ids and current labels::

    probs  (0.9, 0.1) (0.6, 0.4)  (0.2, 0.8)     superpixels 0 0 1     labels 0 1 1
           (0.7, 0.3) (0.55, 0.45) (0.3, 0.7)                0 1 1            0 0 0

Representatives (eqs. 4-6): (1, 0) for superpixel 0 and (0, 2) for superpixel 1.
"""

from __future__ import annotations

import numpy as np

CLASS0 = np.array([[0.9, 0.6, 0.2], [0.7, 0.55, 0.3]])
PROBS = np.stack([CLASS0, 1.0 - CLASS0]).astype(np.float32)
SUPERPIXELS = np.array([[0, 0, 1], [0, 1, 1]])
LABELS = np.array([[0, 1, 1], [0, 0, 0]], dtype=np.uint8)
REPRESENTATIVES = np.array([[1, 0], [0, 2]])
