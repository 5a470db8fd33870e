"""Dense 360-degree head landmarks: the template, the detector, training and export."""
