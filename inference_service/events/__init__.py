"""What live video tells: a person appeared, was named, renamed, or left a camera's view."""
