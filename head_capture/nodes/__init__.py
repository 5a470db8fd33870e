"""Thin rclpy adapters over the ROS-free modules."""
