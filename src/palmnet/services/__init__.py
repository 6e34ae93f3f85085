"""One adapter per daemon: render its config, give its argv, tell when it is ready."""
