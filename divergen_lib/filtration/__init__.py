"""Instance filtration: CLIP score (X-Paste) and CLIP inter-similarity (DiverGen), and the instance pool."""
