"""Pre-annotation with foundation models: SAM superpixels, pseudo-label sources, their weights."""
