"""The UI's pages, one module each; each exposes ROUTES: (path, function, methods)."""
