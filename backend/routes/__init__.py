"""REST routes (FastAPI). The worker never imports this package."""
