"""ROS-free live capture front end: sources, sharpness, keyframes, preprocessing."""
