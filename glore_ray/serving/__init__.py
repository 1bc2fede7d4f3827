"""The GLoRe HTTP service on Ray Serve (docs/architecture.md §7): ``serving.app`` builds the app
(``build_app``), ``serving.launch`` runs it (``run_service``, ``app_builder`` for ``serve run``);
nothing here starts Serve on import."""
