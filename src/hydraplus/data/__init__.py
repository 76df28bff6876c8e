"""Data: the paper's toy problems and image datasets."""
