"""Label Studio integration: brush RLE, labeling configs, result JSON and the API client."""
