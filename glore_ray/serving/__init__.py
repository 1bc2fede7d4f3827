"""The GLoRe HTTP service on Ray Serve (docs/architecture.md §7). Import ``glore_ray.serving.app`` for
``build_app`` / ``app_builder`` / ``run_service``; nothing here starts Serve on import."""
