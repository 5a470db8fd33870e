"""Synthetic data: sample clips, camera degradations, and (later) 360-degree heads."""
